"""Bulk writes on PostgreSQL (psycopg 3): COPY for the rows a job inserts by the thousand, one
UPDATE over arrays for the rows it updates.

A multi-row ``INSERT`` of a thousand rows is several thousand placeholders, which psycopg turns
into the server's ``$n`` form in Python on every call (``psycopg._queries._split_query``), and an
executemany ``UPDATE`` is a round of the pipeline per row: together most of the bookkeeping of a
tagging job on PostgreSQL before this module (docs/benchmarks.md, "Bookkeeping per image").
``COPY ... FROM STDIN`` sends the rows as data, no statement to convert.

:func:`copy_rows` is a plain INSERT of every row (no ``ON CONFLICT``: a duplicate key is an
error, as the INSERT's is), in the session's transaction, the columns' Python-side defaults
filled in (``created_at``...: evaluated once a call). :func:`insert_ids` also gives back the
generated ids, in row order, as ``INSERT ... RETURNING id`` does: it takes them from the
column's sequence first, one query, and copies the rows with them. :func:`update_rows` is the
executemany ``UPDATE ... WHERE id = :id`` as one statement (``UPDATE ... FROM unnest(arrays)``:
a parameter per column, not per value); :func:`update_many` picks it or the executemany.
Errors are raised as SQLAlchemy's (an ``IntegrityError``, or an ``OperationalError`` that
:mod:`core.outage` recognises), as a statement's would be. Other databases and drivers have no
COPY here: :func:`can_copy` says when callers keep their INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, func, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def can_copy(s: Session) -> bool:
    """Whether the session's database takes :func:`copy_rows` (PostgreSQL through psycopg 3)."""
    dialect = s.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def _defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """The Python-side defaults (scalars and argument-less callables) of the columns not given."""
    out: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None or not (default.is_scalar or default.is_callable):
            continue
        out[column.name] = default.arg(None) if default.is_callable else default.arg
    return out


def copy_rows(s: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT INTO table`` every row (dicts with the same keys), by COPY, in the session's
    transaction."""
    if not rows:
        return
    from psycopg import Error, sql

    names = list(rows[0])
    defaults = _defaults(table, names)
    columns = names + list(defaults)
    extra = tuple(defaults.values())
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(*([table.schema] if table.schema else []), table.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    connection = s.connection()  # the session's transaction, begun if it has not begun
    driver = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in names) + extra)
    except Error as exc:  # as SQLAlchemy raises a statement's error (and drops a dead connection)
        gone = connection.dialect.is_disconnect(exc, driver, None)
        if gone:
            connection.invalidate(exc)
        raise sa_exc.DBAPIError.instance(statement.as_string(driver), None, exc, Error, dialect=connection.dialect,
                                         connection_invalidated=gone) from exc


def insert_ids(s: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "id") -> list[int]:
    """Insert ``rows`` by COPY with ids from the ``key`` column's sequence: the ids, in row order
    and ascending, as a multi-row ``INSERT ... RETURNING`` gives them."""
    if not rows:
        return []
    ids = sorted(s.scalars(text("SELECT nextval(pg_get_serial_sequence(:table, :column)) "
                                "FROM generate_series(1, :n)"),
                           {"table": table.fullname, "column": key, "n": len(rows)}))
    copy_rows(s, table, [{key: i, **row} for i, row in zip(ids, rows)])
    return ids


def update_rows(s: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "id") -> None:
    """``UPDATE table SET c = :c, ... WHERE key = :key`` for every row (dicts with the same keys,
    one row per key), as one statement: ``UPDATE ... FROM unnest(:key, :c, ...)``, one array
    parameter per column whose value varies (one plain parameter for a column that has the same
    value in every row). Columns' ``onupdate`` defaults apply as in any UPDATE."""
    if not rows:
        return
    names = list(rows[0])
    columns = {name: [row[name] for row in rows] for name in names}
    same = {name: values[0] for name, values in columns.items()
            if name != key and all(v == values[0] and type(v) is type(values[0]) for v in values)}
    varying = [name for name in names if name not in same]
    arrays = [bindparam(f"u_{name}", columns[name], type_=ARRAY(table.c[name].type)) for name in varying]
    values = func.unnest(*arrays).table_valued(*varying, name="v").render_derived()
    changes = {name: bindparam(f"u_{name}", value, type_=table.c[name].type) for name, value in same.items()}
    changes.update((name, values.c[name]) for name in varying if name != key)
    s.execute(update(table).where(table.c[key] == values.c[key]).values(changes))


def update_many(s: Session, table: Table, statement: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows' new values (column -> value, ``id`` included): :func:`update_rows` where COPY is
    (PostgreSQL), else the executemany ``statement`` (``UPDATE ... WHERE id = :b_id``, its
    parameters ``b_<column>``) with them."""
    if rows and can_copy(s):
        update_rows(s, table, rows)
    elif rows:
        s.execute(statement, [{f"b_{k}": v for k, v in row.items()} for row in rows])
