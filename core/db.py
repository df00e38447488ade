"""SQL storage: the engine and the one session helper for a database URL.

The tables are :mod:`core.schema`'s; Alembic migrations (``migrations/``) create and change them,
and :func:`migrations.get_database` opens a database at the schema this code needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from core.errors import TagscopeError
from core.outage import server_connect_args


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (web) never block the tagging writer
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Database:
    """Engine + session factory for one URL; ``with db.session() as s:`` commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except Exception:
            raise TagscopeError(f"bad database URL {url!r}: use e.g. sqlite:///path/tagscope.sqlite or "
                                "postgresql://user@host/dbname (TAGSCOPE_DATABASE_URL)") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:  # a connection the server dropped (a restart) is replaced, not used; connecting gives up (core.outage)
            kwargs.update(pool_pre_ping=True, connect_args=server_connect_args(parsed))
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except ModuleNotFoundError as exc:
            raise TagscopeError(f"no driver for {parsed.drivername} ({exc.name} missing): "
                                "pip install 'tagscope[postgres]'") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def table_names(db: Database) -> list[str]:
    return inspect(db.engine).get_table_names()
