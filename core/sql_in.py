"""``column IN (values)`` for long lists of values: one array parameter on PostgreSQL.

SQLAlchemy sends ``IN`` with one placeholder per value, and psycopg turns a statement's
placeholders into the server's ``$n`` form in Python on every call (``psycopg._queries``):
~10 us a value, so a job's bulk statements over thousands of ids (registration, what needs
tagging, a batch's stores, the job's summary) cost more in that conversion than in the database.
:func:`one_of` is ``column = ANY(:values)`` there (one array parameter, ~2 us a value all told,
docs/benchmarks.md "Bookkeeping per image") and plain ``IN`` on SQLite and other databases: same
rows, empty list included.

Both forms are built with the statement, so statements holding it are cached like any other
(compiled once, each execution binding its own values); the database compiles one of them.

Longer lists go in :func:`chunks` of ``CHUNK`` values, one statement each: the one chunker of
every ``IN`` over ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

CHUNK = 5000  # values per IN (...) clause


class OneOf(ColumnElement[bool]):
    """``column IN (values)``, written for the database it runs on (:func:`one_of`)."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [("listed", InternalTraversal.dp_clauseelement),
                           ("array", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[Any], values: Iterable[Any]) -> None:
        values = list(values)
        self.listed = column.in_(values)
        self.array = column == any_(bindparam(None, values, type_=ARRAY(column.type)))

    def self_group(self, against: Any = None) -> OneOf:
        return self  # a condition already (not a boolean value to compare with true, as SQLite would)

    def _negate(self) -> ColumnElement[bool]:
        return UnaryExpression(self, operator=operators.inv, type_=Boolean())


def one_of(column: ColumnElement[Any], values: Iterable[Any]) -> OneOf:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:values)``."""
    return OneOf(column, values)


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``values`` in lists of at most ``size``: one ``IN`` (or :func:`one_of`) statement each."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


# In parentheses: ``~one_of(...)`` is ``NOT (...)`` whatever the operators' precedence.
@compiles(OneOf)
def _in(element: OneOf, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.listed, **kw)})"


@compiles(OneOf, "postgresql")
def _any(element: OneOf, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.array, **kw)})"
