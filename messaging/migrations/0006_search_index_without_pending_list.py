"""Keep the PostgreSQL search index up to date on every insert, not through a pending list.

With GIN's default `fastupdate`, new entries wait in a pending list that some later insert
has to merge into the index when it passes `gin_pending_list_limit`; that insert, and the
batch of sends around it, then takes a hundred milliseconds or more. PostgreSQL's
documentation advises turning it off where steady response time matters more than insert
speed: here a send's ack waits for its insert.
"""

from django.db import migrations


def forward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX messaging_message_search SET (fastupdate = off)")


def backward(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX messaging_message_search RESET (fastupdate)")


class Migration(migrations.Migration):
    dependencies = [("messaging", "0005_message_search")]

    operations = [migrations.RunPython(forward, backward)]
