"""What every ``tagscope`` run pays before and after its work (issue 23 point 5, bench/fixed_cost.py):
the schema check without Alembic, and the garbage collector kept off the imports and the exit."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import text

import migrations
from core.db import Database, head_revision
from core.errors import TagscopeError
from tagscope import common

from .conftest import run_cli


def test_the_head_read_from_the_scripts_is_alembics():
    from alembic.script import ScriptDirectory

    from core.db import alembic_config

    assert migrations.head() == head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_revision_read_with_plain_sql_is_alembics(backend, tmp_path, request):
    from alembic.runtime.migration import MigrationContext

    url = f"sqlite:///{tmp_path}/t.sqlite" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    try:
        assert db.current_revision() is None
        db.upgrade()
        with db.engine.connect() as conn:
            assert db.current_revision() == MigrationContext.configure(conn).get_current_revision() == head_revision()
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
        with pytest.raises(TagscopeError, match="several revisions"):
            db.ensure_schema()
    finally:
        db.dispose()


@pytest.fixture
def standalone_process(monkeypatch):
    monkeypatch.setattr(common, "_standalone", [True])
    yield
    gc.unfreeze()  # this test process goes on: give the collector its objects back
    gc.enable()


def test_heavy_imports_pause_the_collector_and_freeze_what_they_made(standalone_process):
    assert gc.isenabled()
    with common.heavy_imports():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_heavy_imports_leave_the_collector_alone_inside_another_program():
    assert not common._standalone[0]  # a test's CliRunner: the program is pytest's
    before = gc.get_freeze_count()
    with common.heavy_imports():
        assert gc.isenabled()
    assert gc.get_freeze_count() == before


def test_a_command_in_a_process_of_its_own_still_exits_cleanly(tmp_path):
    proc = run_cli("status", "--json", home=tmp_path / "home", process=True, timeout=120)
    assert '"images"' in proc.stdout
