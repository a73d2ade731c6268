"""Model instances from the rows of written-out SQL, built as the ORM builds them.

A written-out statement skips the ORM's compiling, but its rows still need what the ORM does
to a value on its way out of the database (SQLite gives a datetime without its zone and a
boolean as 0 or 1): each column's converters, found once for each model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

M = TypeVar("M", bound=Model)
# A converter takes the value, the column and the connection (as the ORM's compiler calls it).
Converter = Callable[[Any, Any, Any], Any]


def columns(model: type[Model], alias: str) -> str:
    """List the model's columns of table `alias`, in the order `instance` reads them."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


def instance(model: type[M], values: Sequence[Any]) -> M:
    """Build a `model` from its columns' values in a row, as listed by `columns`."""
    # The connection of the thread that read the row: a connection belongs to its thread.
    connection = connections[DEFAULT_DB_ALIAS]
    converted = []
    for (column, converters), value in zip(_converters(model), values, strict=True):
        for convert in converters:
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, _attnames(model), converted)


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.cache
def _converters(model: type[Model]) -> tuple[tuple[Any, tuple[Converter, ...]], ...]:
    # What the ORM's compiler applies to a column: the backend's converters, then the field's.
    connection = connections[DEFAULT_DB_ALIAS]
    chains = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column)
        chains.append((column, tuple(converters + field.get_db_converters(connection))))
    return tuple(chains)
