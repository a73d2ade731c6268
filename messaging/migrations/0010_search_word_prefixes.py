"""An index of the words of message bodies as written, so that search matches word prefixes.

The search index of 0005 holds stems ("meeting" is stored as "meet"), which a prefix typed
so far ("meeti") never matches. This adds, beside it, an index of unstemmed words:
PostgreSQL, a GIN index on the body's `simple` text search vector (built concurrently, so
sends go on while it is made); SQLite, a second FTS5 table with a prefix index, kept in
step by triggers.
"""

from django.db import migrations

SQLITE_FORWARD = [
    """CREATE VIRTUAL TABLE messaging_message_words USING fts5(
        body, content='messaging_message', content_rowid='id', tokenize='unicode61',
        prefix='1 2 3'
    )""",
    """CREATE TRIGGER messaging_message_words_insert AFTER INSERT ON messaging_message BEGIN
        INSERT INTO messaging_message_words(rowid, body) VALUES (new.id, new.body);
    END""",
    """CREATE TRIGGER messaging_message_words_delete AFTER DELETE ON messaging_message BEGIN
        INSERT INTO messaging_message_words(messaging_message_words, rowid, body)
        VALUES ('delete', old.id, old.body);
    END""",
    """CREATE TRIGGER messaging_message_words_update AFTER UPDATE OF body ON messaging_message
    BEGIN
        INSERT INTO messaging_message_words(messaging_message_words, rowid, body)
        VALUES ('delete', old.id, old.body);
        INSERT INTO messaging_message_words(rowid, body) VALUES (new.id, new.body);
    END""",
    "INSERT INTO messaging_message_words(messaging_message_words) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS messaging_message_words_insert",
    "DROP TRIGGER IF EXISTS messaging_message_words_delete",
    "DROP TRIGGER IF EXISTS messaging_message_words_update",
    "DROP TABLE IF EXISTS messaging_message_words",
]
# Kept up to date on every insert, as 0006 does for the stemmed index.
POSTGRES_FORWARD = [
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS messaging_message_search_words
        ON messaging_message USING GIN (to_tsvector('simple'::regconfig, body))
        WITH (fastupdate = off)""",
]
POSTGRES_BACKWARD = ["DROP INDEX CONCURRENTLY IF EXISTS messaging_message_search_words"]


def _run(schema_editor, statements) -> None:
    for statement in statements:
        schema_editor.execute(statement)


def forward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, POSTGRES_FORWARD)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_FORWARD)


def backward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, POSTGRES_BACKWARD)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_BACKWARD)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("messaging", "0009_keyed_sent_hash")]

    operations = [migrations.RunPython(forward, backward)]
