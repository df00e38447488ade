"""The schema's Alembic migrations (``versions/``), and the two facts every command's start checks
(:meth:`core.db.Database.ensure_schema`) read without importing Alembic: that import is a fifth of
a second of every ``tagscope`` run (issue 23)."""

from __future__ import annotations

import ast
from pathlib import Path

VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps


def current_revision(conn) -> str | None:
    """The revision a database is at: its ``alembic_version`` row, None before the first migration
    (as Alembic's ``MigrationContext.get_current_revision``, which also refuses several rows)."""
    from sqlalchemy import inspect, text

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
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    return ScriptDirectory.from_config(cfg).get_current_head()
