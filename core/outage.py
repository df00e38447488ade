"""Database outages: which errors mean the database cannot be reached right now, and getting a unit
of work through one.

A PostgreSQL server restarting, stopped or out of reach, a connection it dropped, a pool with no
connection to give: these pass (the server comes back), unlike a bad query or a missing table.
:func:`outage_reason` tells them apart, with one line saying why (the web app answers 503 with
it); :func:`through_outages` runs a unit of work again once the database answers (workers: a
task's claim, its images, its end), so a restart costs a pause, not a failed task.

Reconnecting itself is the engine's (:class:`core.db.Database`): a pooled connection is pinged
before use (``pool_pre_ping``) and a dead one replaced; a connection attempt gives up after
``connect_timeout`` seconds, so nothing waits for a server that does not answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_WAIT_S = 600.0  # how long a unit of work waits for the database before it fails
_PG_OUTAGE_STATES = ("08", "57P", "53300")  # connection exception; shutdown, crash, starting up; too many clients
_SQLITE_OUTAGES = ("database is locked", "unable to open database file", "disk i/o error")


CONNECT_TIMEOUT_S = 5  # a PostgreSQL server that does not answer: an error (web: a 503) after this, not a hang
_LIBPQ_DEFAULTS = {"connect_timeout": CONNECT_TIMEOUT_S,
                   # a server gone without a word (a lost machine, a dropped route) shows as a broken
                   # connection within about a minute, not the kernel's two hours
                   "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def server_connect_args(parsed: Any) -> dict[str, Any]:
    """The libpq options :class:`core.db.Database` gives a PostgreSQL engine, those its URL
    (``sqlalchemy.engine.URL``) does not set itself."""
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        return {}
    return {k: v for k, v in _LIBPQ_DEFAULTS.items() if k not in parsed.query}


def outage_reason(exc: BaseException) -> str | None:
    """Why the database is unreachable, when ``exc`` (or an exception it was raised from) says it
    is (one line, no password); None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        reason = _reason(exc)
        if reason is not None:
            return reason
        exc = exc.__cause__ or exc.__context__
    return None


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return _first_line(exc)
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    orig = exc.orig
    if exc.connection_invalidated:
        return _first_line(orig or exc)
    if not isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return None
    module = type(orig).__module__
    if module.startswith(("psycopg", "pg8000", "asyncpg")):
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return _first_line(orig) if state is None or state.startswith(_PG_OUTAGE_STATES) else None
    if module.startswith("sqlite3"):
        return _first_line(orig) if any(s in str(orig).lower() for s in _SQLITE_OUTAGES) else None
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def wait_for_database(db: Any, timeout_s: float) -> None:
    """Return once ``db`` (a :class:`core.db.Database`) answers a query; raise the last error
    after ``timeout_s`` seconds."""
    deadline, pause = time.monotonic() + timeout_s, 0.25
    while True:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except Exception as exc:  # noqa: BLE001 - raised below, or waited out
            if outage_reason(exc) is None or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def through_outages(db: Any, work: Callable[[], T], what: str, wait_s: float = OUTAGE_WAIT_S) -> T:
    """``work()``; when a database outage stops it, run it again once ``db`` answers, for up to
    ``wait_s`` seconds of outage in all (then the outage's error is raised). ``work`` must be safe
    to run again after a partial run (every unit of work here is: its writes replace)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return work()
        except Exception as exc:
            reason = outage_reason(exc)
            left = deadline - time.monotonic()
            if reason is None or left <= 0:
                raise
            log.warning("%s: the database is unreachable (%s): retrying once it answers", what, reason)
            wait_for_database(db, left)
            log.warning("%s: the database answers again: retrying", what)
