"""A full-text index of message bodies, kept up to date by the database itself.

PostgreSQL: a generated tsvector column (text search configuration CHAT_SEARCH_CONFIG at
migration time) with a GIN index. SQLite: an FTS5 table over the messages, kept in step by
triggers.
"""

from django.conf import settings
from django.db import migrations

SQLITE_FORWARD = [
    """CREATE VIRTUAL TABLE messaging_message_fts USING fts5(
        body, content='messaging_message', content_rowid='id', tokenize='porter unicode61'
    )""",
    """CREATE TRIGGER messaging_message_fts_insert AFTER INSERT ON messaging_message BEGIN
        INSERT INTO messaging_message_fts(rowid, body) VALUES (new.id, new.body);
    END""",
    """CREATE TRIGGER messaging_message_fts_delete AFTER DELETE ON messaging_message BEGIN
        INSERT INTO messaging_message_fts(messaging_message_fts, rowid, body)
        VALUES ('delete', old.id, old.body);
    END""",
    """CREATE TRIGGER messaging_message_fts_update AFTER UPDATE OF body ON messaging_message
    BEGIN
        INSERT INTO messaging_message_fts(messaging_message_fts, rowid, body)
        VALUES ('delete', old.id, old.body);
        INSERT INTO messaging_message_fts(rowid, body) VALUES (new.id, new.body);
    END""",
    "INSERT INTO messaging_message_fts(messaging_message_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS messaging_message_fts_insert",
    "DROP TRIGGER IF EXISTS messaging_message_fts_delete",
    "DROP TRIGGER IF EXISTS messaging_message_fts_update",
    "DROP TABLE IF EXISTS messaging_message_fts",
]


def postgres_forward(config: str) -> list[str]:
    return [
        f"""ALTER TABLE messaging_message ADD COLUMN search_vector tsvector
            GENERATED ALWAYS AS (to_tsvector('{config}'::regconfig, body)) STORED""",
        "CREATE INDEX messaging_message_search ON messaging_message USING GIN (search_vector)",
    ]


POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS messaging_message_search",
    "ALTER TABLE messaging_message DROP COLUMN IF EXISTS search_vector",
]


def _run(schema_editor, statements) -> None:
    for statement in statements:
        schema_editor.execute(statement)


def forward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        config = settings.CHAT_SEARCH_CONFIG
        if not config.replace("_", "").isalnum():
            raise ValueError(f"CHAT_SEARCH_CONFIG {config!r} is not a configuration name")
        _run(schema_editor, postgres_forward(config))
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_FORWARD)


def backward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, POSTGRES_BACKWARD)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_sent_hash")]

    operations = [migrations.RunPython(forward, backward)]
