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
Converter = Callable[[Any], Any]


def columns(model: type[Model], alias: str) -> str:
    """List the model's columns of table `alias`, in the order `instance` reads them."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


def instance(model: type[M], values: Sequence[Any]) -> M:
    """Build a `model` from its columns' values in a row, as listed by `columns`."""
    converted = [convert(value) for convert, value in zip(_converters(model), values, strict=True)]
    return model.from_db(DEFAULT_DB_ALIAS, _attnames(model), converted)


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.cache
def _converters(model: type[Model]) -> tuple[Converter, ...]:
    # What the ORM's compiler applies to a column: the backend's converters, then the field's.
    connection = connections[DEFAULT_DB_ALIAS]
    chains = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        chains.append(_chain(converters, column, connection))
    return tuple(chains)


def _chain(converters: list, expression: Any, connection: Any) -> Converter:
    if not converters:
        return _unchanged

    def convert(value: Any) -> Any:
        for converter in converters:
            value = converter(value, expression, connection)
        return value

    return convert


def _unchanged(value: Any) -> Any:
    return value
