"""What every ``tagscope`` run pays before and after its work (issue 23 point 5, bench/fixed_cost.py):
the schema check without Alembic, and the garbage collector kept off the imports and the exit."""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import text

import migrations
from core.db import Database
from core.errors import TagscopeError
from tagscope import common

from . import ROOT
from .commands import run_cli


def test_the_head_read_from_the_scripts_is_alembics():
    from alembic.script import ScriptDirectory

    assert migrations.head() == ScriptDirectory.from_config(migrations.alembic_config()).get_current_head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_revision_read_with_plain_sql_is_alembics(backend, tmp_path, request):
    from alembic.runtime.migration import MigrationContext

    url = f"sqlite:///{tmp_path}/t.sqlite" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    try:
        assert migrations.current_revision(db) is None
        migrations.upgrade(db)
        with db.engine.connect() as conn:
            assert migrations.current_revision(db) == MigrationContext.configure(conn).get_current_revision() \
                == migrations.head()
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
        with pytest.raises(TagscopeError, match="several revisions"):
            migrations.ensure_schema(db)
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


def test_leaving_early_stops_thread_pools_runs_exit_handlers_and_keeps_the_code(tmp_path):
    """tagscope.common.leave: as the interpreter's exit (a pool's idle worker threads are told to
    stop, non-daemon threads joined, atexit handlers run, output flushed), then no teardown."""
    import subprocess
    import sys

    marker = tmp_path / "atexit-ran"
    script = ("import atexit, sys, threading, time\n"
              "from concurrent.futures import ThreadPoolExecutor\n"
              "from tagscope.common import leave\n"
              "pool = ThreadPoolExecutor(2); pool.submit(time.sleep, 0.1).result()\n"
              "t = threading.Thread(target=time.sleep, args=(0.5,)); t.start()\n"
              f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
              "print('out', end=''); sys.stderr.write('err')\n"
              "leave(3)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=str(ROOT))
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out", "err")
    assert marker.read_text() == "yes"


def test_a_tag_in_a_process_of_its_own_ends(tmp_path, synthetic_photos):
    from .photos import photos_subset

    photos = photos_subset(synthetic_photos, tmp_path / "photos", 12)
    proc = run_cli("tag", str(photos), "--model", "synthetic", home=tmp_path / "home", process=True, timeout=180)
    assert "12 processed" in proc.stderr + proc.stdout
