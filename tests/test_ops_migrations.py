"""Migrations stay additive (expand, then contract), so old code runs on the new schema.

During a rolling deploy the previous release keeps serving for a while after `migrate`
(docs/operations.md, "Changing the schema"). django-migration-linter reads the SQL that
each migration runs on PostgreSQL and names what the previous release cannot live with: a
dropped or renamed column or table, a NOT NULL column without a database default. Its SQL
analysis needs PostgreSQL: on SQLite every change rebuilds the table and reads as a drop.
"""

from __future__ import annotations

import ast
import re
from importlib import import_module
from inspect import getsource

import pytest
from django.db import connection, migrations, models
from django.db.migrations.loader import MigrationLoader
from django_migration_linter import MigrationLinter
from django_migration_linter.sql_analyser import PostgresqlAnalyser, analyse_sql_statements

pytestmark = [pytest.mark.services, pytest.mark.django_db]

# Non-additive migrations shipped before the rule was written down and checked. Every
# deployed database is past them; they stay as they are, because editing an applied
# migration changes nothing on those databases and would only make a fresh one differ.
GRANDFATHERED = {
    "0003_message_kind": (
        "adds Message.kind with a Python default only: Django drops the column's default "
        "after adding it, so the release before could no longer insert a message; "
        "db_default='text' would be the additive form"
    ),
    "0004_sent_hash": (
        "adds Message.sent_hash NOT NULL with no database default, the same break as 0003"
    ),
    "0007_presence_per_process": (
        "drops SocketPresence.heartbeat_at and adds SocketPresence.process NOT NULL without "
        "a default in one release: the release before refused every new socket (403, "
        "column does not exist) until its processes were restarted (issue 23)"
    ),
}

# SQL that a RunPython function runs is invisible to the linter (sqlmigrate prints only
# "Raw Python operation"); these words in a later migration's forward code fail the check.
RAW_SQL_BREAKS = re.compile(
    r"\b(DROP\s+(COLUMN|TABLE)|RENAME\s+(COLUMN|TO)|SET\s+NOT\s+NULL)\b", re.IGNORECASE
)


def linter() -> MigrationLinter:
    return MigrationLinter(no_cache=True, no_output=True, include_apps=["messaging"])


def sql_of(migration: migrations.Migration, loader: MigrationLoader) -> list[str]:
    """Return the statements a messaging migration runs, as `sqlmigrate` prints them."""
    key = (migration.app_label, migration.name)
    if key in loader.graph.nodes:
        state = loader.project_state(key, at_end=False)
    else:  # a migration made by a test, placed after the newest
        state = loader.project_state(loader.graph.leaf_nodes("messaging")[0], at_end=True)
    with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
        migration.apply(state, editor, collect_sql=True)
    return [line for statement in editor.collected_sql for line in statement.splitlines()]


def forward_sources(migration: migrations.Migration) -> str:
    """Return the source of the module-level SQL and forward functions a migration runs."""
    module = import_module(migration.__module__)
    tree = ast.parse(getsource(module))
    backward = re.compile(r"backward|reverse|undo|unkey", re.IGNORECASE)
    kept = [
        ast.get_source_segment(getsource(module), node) or ""
        for node in tree.body
        if not (isinstance(node, ast.FunctionDef) and backward.search(node.name))
        and not (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and backward.search(t.id) for t in node.targets)
        )
    ]
    return "\n".join(kept)


def problems(migration: migrations.Migration, loader: MigrationLoader) -> list[str]:
    """Name what in a migration the previous release's code could not run against."""
    errors, _ignored, _warnings = analyse_sql_statements(
        PostgresqlAnalyser, sql_of(migration, loader)
    )
    data_errors, _ignored, _warnings = linter().analyse_data_migration(migration)
    found = []
    for issue in [*errors, *data_errors]:
        where = ".".join(part for part in (issue.table, issue.column) if part)
        found.append(f"{issue.message} ({where})" if where else issue.message)
    if any(isinstance(op, migrations.RunPython) for op in migration.operations):
        found += [
            f"raw SQL in its forward code: {match[0]}"
            for match in RAW_SQL_BREAKS.finditer(forward_sources(migration))
        ]
    return found


def messaging_migrations(loader: MigrationLoader) -> list[migrations.Migration]:
    return sorted(
        (m for (app, _), m in loader.disk_migrations.items() if app == "messaging"),
        key=lambda m: m.name,
    )


def test_every_migration_after_the_grandfathered_ones_is_additive():
    loader = MigrationLoader(connection)
    broken = {
        migration.name: found
        for migration in messaging_migrations(loader)
        if migration.name not in GRANDFATHERED and (found := problems(migration, loader))
    }
    assert not broken, (
        "these migrations would break the release still running during a deploy; split "
        "them into expand and contract releases (docs/operations.md, 'Changing the "
        f"schema'): {broken}"
    )


def test_the_grandfathered_migrations_are_the_ones_that_break_the_rule():
    loader = MigrationLoader(connection)
    by_name = {m.name: m for m in messaging_migrations(loader)}
    assert set(GRANDFATHERED) <= set(by_name)
    for name in GRANDFATHERED:
        assert problems(by_name[name], loader), f"{name} is additive: take it off the list"


def release(*operations) -> migrations.Migration:
    """Make a migration placed after the newest one, as the next release would add it."""
    migration = migrations.Migration("9999_next_release", "messaging")
    migration.operations = list(operations)
    return migration


@pytest.mark.parametrize(
    ("operation", "named"),
    [
        (migrations.RemoveField("message", "edited_at"), "DROPPING columns"),
        (migrations.RenameField("message", "body", "text"), "RENAMING columns"),
        (
            migrations.AddField(
                "message", "topic", models.CharField(max_length=20, default="general")
            ),
            "NOT NULL",
        ),
        (migrations.DeleteModel("Report"), "DROPPING table"),
        (
            migrations.RunSQL(
                "ALTER TABLE messaging_message DROP COLUMN edited_at",
                "ALTER TABLE messaging_message ADD COLUMN edited_at timestamptz",
            ),
            "DROPPING columns",
        ),
    ],
)
def test_a_release_that_removes_or_renames_what_old_code_uses_is_refused(operation, named):
    found = problems(release(operation), MigrationLoader(connection))
    assert any(named in problem for problem in found), found


def test_a_release_that_only_adds_passes():
    found = problems(
        release(
            migrations.AddField(
                "message",
                "topic",
                models.CharField(max_length=20, default="general", db_default="general"),
            ),
            migrations.AddField("message", "pinned_at", models.DateTimeField(null=True)),
        ),
        MigrationLoader(connection),
    )
    assert found == []
