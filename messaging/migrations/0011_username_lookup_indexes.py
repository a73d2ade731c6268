"""Indexes that keep finding people by part of a username cheap on PostgreSQL.

The people finder matches names that start with the typed text first, then names that hold
it anywhere, both ignoring case (`UPPER(username) LIKE ...`, as Django's `istartswith` and
`icontains` write it). A b-tree with pattern operators serves the first; trigrams (pg_trgm,
a trusted extension that a database owner may create) serve the second. Built
concurrently, so sign-ups go on while they are made. SQLite needs nothing: it is the
one-machine set-up.
"""

from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations


def _user_table(apps) -> str:
    return apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(_user_table(apps))
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS messaging_username_prefix "
        f"ON {table} (UPPER(username::text) text_pattern_ops)"
    )
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS messaging_username_trigrams "
        f"ON {table} USING GIN (UPPER(username::text) gin_trgm_ops)"
    )


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS messaging_username_prefix")
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS messaging_username_trigrams")


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("messaging", "0010_search_word_prefixes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [TrigramExtension(), migrations.RunPython(forward, backward)]
