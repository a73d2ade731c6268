"""Lists of values in written-out SQL as a few parameters, whatever their length.

psycopg binds parameters on the client (Django's default): it splits the query text at its
placeholders with a regular expression and quotes every value in Python, and it caches the
split only for short texts with few placeholders. A batch of ten sends written with one
placeholder per value spent 0.46 ms there; with one parameter per list, 0.01 ms, and its
text is the same for every batch size, so the cache applies.

On PostgreSQL a list is an array literal, so that the planner sees how many values there
are (an `unnest` of a constant array is estimated at its length; a set-returning function
of a parameter it cannot see into at 100 rows, which made it scan whole tables). SQLite
has no arrays: there a list is a JSON document read with `json_each`. The ORM's `__in` writes
a placeholder per value too: a page of 200 messages' reactions, mentions and files spent
more CPU splitting and quoting than reading them; `is_one_of` is its filter instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import BooleanField, Model
from django.db.models.expressions import RawSQL

_INTEGERS = frozenset({"bigint", "integer"})
# One for every filter: a field's constructor normalises its choices, a cost on every call.
_BOOLEAN = BooleanField()


@dataclass(frozen=True)
class WrittenQuery:
    """A written-out query and its parameters, to be put inside another statement."""

    sql: str
    params: list = field(default_factory=list)


def one_of(column: str, values: Sequence, cast: str = "bigint") -> tuple[str, list[str]]:
    """Build the condition `column` is one of `values`, and its parameter."""
    if _postgres():
        return f"{column} = ANY(%s::{cast}[])", [_array(values, cast)]
    return f"{column} IN (SELECT value FROM json_each(%s))", [_json(values)]


def is_one_of(model: type[Model], column: str, values: Sequence, cast: str = "bigint") -> RawSQL:
    """Give an ORM filter: the `column` of `model`'s table is one of `values`.

    The column is named with its table's name: for a query's own table, not for a table
    the ORM renames inside a subquery (the same table asked about in a query of itself).
    """
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    condition, params = one_of(f"{quote(model._meta.db_table)}.{quote(column)}", values, cast)
    return RawSQL(condition, params, output_field=_BOOLEAN)


def table(
    alias: str, columns: Mapping[str, str], rows: Sequence[Sequence]
) -> tuple[str, list[str]]:
    """Build a table `alias` of these rows, its columns named and typed by `columns`.

    Return the FROM item and its parameters. Read the columns as `alias.name`.
    """
    if _postgres():
        casts = list(columns.values())
        by_column = list(zip(*rows, strict=True)) or [()] * len(casts)
        arrays = ", ".join(f"%s::{cast}[]" for cast in casts)
        return (
            f"unnest({arrays}) AS {alias}({', '.join(columns)})",
            [_array(values, cast) for values, cast in zip(by_column, casts, strict=True)],
        )
    fields = ", ".join(
        f"CAST(json_extract(value, '$[{index}]') AS {cast}) AS {name}"
        for index, (name, cast) in enumerate(columns.items())
    )
    return f"(SELECT {fields} FROM json_each(%s)) AS {alias}", [_json(rows)]


@functools.cache
def _postgres() -> bool:
    # Asked for every list of every batch; the database's kind does not change.
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


def _array(values: Sequence, cast: str) -> str:
    """Write the values as a PostgreSQL array literal (its text form)."""
    if cast in _INTEGERS:
        return "{" + ",".join(str(int(value)) for value in values) + "}"
    # Each element quoted; inside the quotes a backslash escapes the next character.
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def _json(values: Sequence) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
