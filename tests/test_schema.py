"""The schema has one home (core/schema/) and the migrations build exactly it: autogenerating a
migration against a database at head, through the real ``migrations/env.py`` in a fresh
interpreter (so only the tables env.py's imports define count), finds nothing to change; the
developer's way to write a migration (``alembic.ini`` at the repository root) does the same."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys

from . import ROOT

# Run in a fresh interpreter: Alembic's own autogenerate through migrations/env.py, its proposed
# operations captured (and emptied, so no script is written) and printed as JSON.
AUTOGENERATE = """
import json, sys
from alembic import command
from migrations import alembic_config

found = []

def capture(context, revision, directives):
    found.extend(repr(diff) for diff in directives[0].upgrade_ops.as_diffs())
    directives[:] = []

cfg = alembic_config()
cfg.set_main_option("sqlalchemy.url", sys.argv[1].replace("%", "%%"))
command.revision(cfg, autogenerate=True, process_revision_directives=capture)
print(json.dumps(found))
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGSCOPE_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_autogenerating_against_a_database_at_head_finds_nothing_to_change(db_at_head, tmp_path):
    out = subprocess.run([sys.executable, "-c", AUTOGENERATE, db_at_head], cwd=tmp_path, env=clean_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_every_table_is_defined_in_the_schema_home():
    """A class with ``__tablename__`` anywhere else is a table env.py never imports."""
    outside = []
    for package in ("core", "mkt", "indexer", "tagger", "web", "tagscope", "migrations"):
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "core" / "schema") or "versions" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef) and any("__tablename__" in ast.dump(stmt) for stmt in node.body
                                                          if isinstance(stmt, (ast.Assign, ast.AnnAssign))):
                    outside.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert outside == [], "tables outside core/schema/ (move them there):\n" + "\n".join(outside)


def test_alembic_ini_writes_an_empty_migration_at_head(db_at_head, tmp_path):
    """``alembic revision --autogenerate`` from the repository root, run on a copy of alembic.ini and
    migrations/ (the repository's versions/ are never written), with the settings' database."""
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "migrations", work / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "alembic.ini", work / "alembic.ini")
    env = clean_env(TAGSCOPE_DATABASE_URL=db_at_head, TAGSCOPE_HOME=str(tmp_path / "home"))
    alembic = [sys.executable, "-m", "alembic"]
    made = subprocess.run([*alembic, "revision", "--autogenerate", "-m", "nothing new", "--rev-id", "9999"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    script = work / "migrations" / "versions" / "9999_nothing_new.py"
    upgrade_fn = next(node for node in ast.parse(script.read_text()).body
                      if isinstance(node, ast.FunctionDef) and node.name == "upgrade")
    assert [type(stmt) for stmt in upgrade_fn.body] == [ast.Pass], script.read_text()
    script.unlink()
    checked = subprocess.run([*alembic, "check"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0 and "No new upgrade operations detected" in checked.stdout + checked.stderr, \
        checked.stdout + checked.stderr

