"""The schema's Alembic migrations (``versions/``, built from :mod:`core.schema` by ``env.py``), and
a database opened at the schema this code needs (:func:`get_database`): the embedded SQLite default
migrates itself on first use, a server database asks for ``tagscope db upgrade``. The two facts
that check compares are read without importing Alembic: that import is a fifth of a second of
every ``tagscope`` run (issue 23).

The arrow runs one way: migrations use ``core`` (the schema, the engine), ``core`` never imports
migrations."""

from __future__ import annotations

import ast
from pathlib import Path

from core.db import Database
from core.errors import TagscopeError

VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps


def current_revision(db: Database) -> str | None:
    """The revision a database is at: its ``alembic_version`` row, None before the first migration
    (as Alembic's ``MigrationContext.get_current_revision``, which also refuses several rows)."""
    from sqlalchemy import inspect, text

    with db.engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"{VERSION_TABLE} holds several revisions ({', '.join(rows)}): run `tagscope db upgrade`")
    return rows[0] if rows else None


def head() -> str:
    """The newest revision: the one script in ``versions/`` that no other revises (their module-level
    ``revision`` and ``down_revision``); Alembic's own answer when that is not a single one."""
    revisions, revised = set(), set()
    for path in (Path(__file__).parent / "versions").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None)
            name = target.id if isinstance(target, ast.Name) else None
            if name == "revision":
                revisions.add(ast.literal_eval(node.value))
            elif name == "down_revision":
                down = ast.literal_eval(node.value)
                revised.update(down if isinstance(down, (tuple, list)) else [down])
    heads = revisions - revised
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """What autogenerate compares (Alembic's ``include_name`` hook, used by env.py): everything but
    the full-text tables and indexes over ``photo_text`` (migration 0013), which no model describes."""
    from core.schema import full_text_object

    return not (type_ in ("table", "index") and full_text_object(name))


def alembic_config():  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision``."""
    from alembic import command

    with db.engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def ensure_schema(db: Database) -> None:
    """Migrate the embedded SQLite default on first use; ask for ``db upgrade`` elsewhere."""
    try:
        current = current_revision(db)
    except Exception as exc:
        raise TagscopeError(f"cannot connect to the database {db.engine.url!r} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                            "check TAGSCOPE_DATABASE_URL and that the server is running") from None
    needed = head()
    if current == needed:
        return
    if db.is_sqlite:
        upgrade(db)
        return
    raise TagscopeError(f"database schema is at {current or 'nothing'}, the code needs {needed}: "
                        "run `tagscope db upgrade`")


_databases: dict[str, Database] = {}


def get_database(url: str, migrate: bool = True) -> Database:
    """One :class:`~core.db.Database` per URL per process (workers and the web app share it), at the
    schema this code needs when ``migrate``."""
    db = _databases.get(url)
    if db is None:
        db = _databases[url] = Database(url)
        if migrate:
            ensure_schema(db)
    return db
