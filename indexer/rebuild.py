"""Rebuilding a version's index from the embedding store: on demand, or in the background when
the collection outgrows it.

``tagscope index rebuild`` runs :func:`rebuild_index` in the foreground. During tagging, every
merge (:func:`indexer.sync.sync_index`) asks :func:`upgrade_reason` whether the index still suits
the store (:func:`indexer.ann.rebuild_reason`: with ``index_kind = auto`` a flat index past
5x10^4 vectors, inverted lists 4x off their best count, an hnsw graph a fifth tombstones) and, if
not, :func:`start_upgrade_if_needed` starts ``python -m indexer.rebuild`` as a separate process at
lower CPU priority: FAISS training never competes with the tagging process's own threads or
holds up its merges, and a rebuild outlives the worker that started it. Searches keep using the
old index until the new one replaces it atomically.

Tagging goes on during a rebuild. A rebuild holds the version's rebuild lock from start to
swap; it takes the index lock once right after (a barrier: a merge that started before has
finished), and merges that find the rebuild lock held apply their changes to the old index but
keep the change rows. After filling the new index from a scan of the store, the rebuild applies
every pending row (reading each image's current state: replays are harmless) under the index
lock and swaps. So nothing stored during the rebuild is missed.

Each rebuild writes ``<version>.rebuild.json`` next to the index (state, reason, kind, size,
seconds, error) and logs to ``<version>.rebuild.log``; ``tagscope index status`` shows both. A
failed background rebuild is retried after :data:`RETRY_AFTER_S`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.atomic import atomic_write
from core.db import Database, get_database
from core.settings import Settings, load_settings
from indexer import ann, store
from indexer.locks import file_lock, index_lock, is_held, rebuild_lock_path
from indexer.merge import apply_changes, version_id
from indexer.vector_index import VectorIndex

log = logging.getLogger(__name__)

RETRY_AFTER_S = 600.0  # a failed background rebuild is tried again after this long
SPAWN_SPACING_S = 30.0  # one process starts at most one rebuild of a version per this long
NICE = 10  # background rebuilds run at lower CPU priority than tagging
_ROOT = Path(__file__).resolve().parent.parent
_spawned: dict[str, float] = {}
_children: list[subprocess.Popen] = []


def rebuild_index(settings: Settings, version: str, dim: int, kind: str | None = None,
                  reason: str = "asked for") -> int:
    """Build the index of ``version`` from the embedding store alone (no photo is read) and swap
    it in atomically; returns its size. ``kind``: flat, hnsw, ivfpq, or auto (default: the
    ``index_kind`` setting) to choose by size (:func:`indexer.ann.choose_kind`); an approximate
    kind trains on a random sample of stored embeddings. Waits for a rebuild already running."""
    with file_lock(rebuild_lock_path(settings.index_dir, version)):
        return _rebuild_locked(settings, version, dim, kind, reason)


def _rebuild_locked(settings: Settings, version: str, dim: int, kind: str | None, reason: str) -> int:
    """The rebuild itself; the caller holds the rebuild lock."""
    t0 = time.time()
    with index_lock(settings.index_dir, version):
        pass  # the barrier (module docstring): from here on, merges keep their change rows
    db = get_database(settings.db_url)
    mv_id = version_id(db, version)
    n = store.count(db, mv_id) if mv_id is not None else 0
    asked = kind or wanted_kind(settings, version)
    kind = ann.resolve_kind(asked, n)
    status = {"state": "running", "reason": reason, "asked": asked, "kind": kind, "stored": n, "started_at": t0,
              "pid": os.getpid()}
    _write_status(settings.index_dir, version, status)
    try:
        want = ann.train_size(kind, n)
        index = VectorIndex.build(settings.index_dir, version, dim, kind, n,
                                  store.sample(db, mv_id, dim, want) if want and mv_id is not None else None)
        if mv_id is not None:
            for ids, vectors, _ in store.scan(db, mv_id, dim):
                index.extend(ids, vectors)
        with index_lock(settings.index_dir, version):
            if mv_id is not None:
                apply_changes(db, index, mv_id)
            index.save()
    except BaseException as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _write_status(settings.index_dir, version, status | {"state": "failed", "finished_at": time.time(),
                                                            "error": error})
        raise
    done = {"state": "done", "size": len(index), "finished_at": time.time(), "seconds": round(time.time() - t0, 3)}
    _write_status(settings.index_dir, version, status | done)
    log.info("index %s: rebuilt as %s with %d vectors (%s)", version, index.factory, len(index), reason)
    return len(index)


def wanted_kind(settings: Settings, version: str) -> str:
    """The kind this version's index should be: the ``index_kind`` setting when it names one;
    with ``auto``, the kind the last ``tagscope index rebuild --kind`` asked for (it sticks until
    a rebuild asks for another, ``--kind auto`` included), else auto."""
    if settings.index_kind != "auto":
        return settings.index_kind
    return str(rebuild_status(settings.index_dir, version).get("asked") or "auto")


def upgrade_reason(settings: Settings, db: Database, mv_id: int, index: VectorIndex) -> str | None:
    """Why the index should be rebuilt now (:func:`indexer.ann.rebuild_reason` for
    :func:`wanted_kind`), or None; also None while the store holds too few embeddings to train
    the kind it would become."""
    # Only a graph can hold tombstones; elsewhere the index holds what the store does.
    n = store.count(db, mv_id) if index.kind == "hnsw" else len(index)
    kind = wanted_kind(settings, index.version)
    reason = ann.rebuild_reason(index.index, n, kind)
    if reason is None or n < ann.train_minimum(ann.resolve_kind(kind, n), n):
        return None
    return reason


def start_upgrade_if_needed(settings: Settings, version: str, dim: int, index: VectorIndex) -> int | None:
    """Start a background rebuild of ``version`` when :func:`upgrade_reason` gives one and none
    runs (nor failed within :data:`RETRY_AFTER_S`); returns the new process's pid, or None."""
    _reap()
    db = get_database(settings.db_url)
    mv_id = version_id(db, version)
    reason = upgrade_reason(settings, db, mv_id, index) if mv_id is not None else None
    if reason is None or time.monotonic() - _spawned.get(version, -SPAWN_SPACING_S) < SPAWN_SPACING_S:
        return None
    last = rebuild_status(settings.index_dir, version)
    if last.get("running") or (last.get("state") == "failed"
                               and time.time() - last.get("finished_at", 0) < RETRY_AFTER_S):
        return None
    _spawned[version] = time.monotonic()
    return _spawn(settings, version, dim, reason)


def _spawn(settings: Settings, version: str, dim: int, reason: str) -> int:
    env = dict(os.environ, TAGSCOPE_HOME=str(settings.home.resolve()), TAGSCOPE_DATABASE_URL=settings.db_url,
               TAGSCOPE_INDEX_KIND=settings.index_kind,
               # FAISS's OpenMP threads otherwise spin-wait, and lose 20x on cores tagging keeps busy
               # (docs/benchmarks.md, "Search index").
               OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.index_dir / f"{version}.rebuild.log", "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "indexer.rebuild", version, str(dim), "--reason", reason],
                                env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, close_fds=True)
    _children.append(proc)
    log.info("index %s: rebuilding in the background (pid %d): %s", version, proc.pid, reason)
    return proc.pid


def _reap() -> None:
    """Collect background rebuilds that ended (no zombies in a long-lived worker)."""
    _children[:] = [p for p in _children if p.poll() is None]


def rebuild_status(index_dir: Path, version: str) -> dict[str, Any]:
    """The last rebuild's record (``{}`` if none), with ``running``: whether one runs now."""
    path = Path(index_dir) / f"{version}.rebuild.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    return record | {"running": is_held(rebuild_lock_path(index_dir, version))}


def _write_status(index_dir: Path, version: str, record: dict[str, Any]) -> None:
    atomic_write(Path(index_dir) / f"{version}.rebuild.json", lambda p: p.write_text(json.dumps(record, indent=1)))


def main(argv: list[str] | None = None) -> int:
    """``python -m indexer.rebuild VERSION DIM``: one background rebuild (started by a merge)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("version")
    parser.add_argument("dim", type=int)
    parser.add_argument("--reason", default="asked for")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    try:
        os.nice(NICE)
    except OSError:
        pass
    settings = load_settings()
    for _ in range(20):  # a merge probing whether a rebuild runs holds the lock for an instant
        with file_lock(rebuild_lock_path(settings.index_dir, args.version), blocking=False) as got:
            if got:
                return _run_upgrade(settings, args.version, args.dim, args.reason)
        time.sleep(0.1)
    log.info("index %s: another rebuild is running", args.version)
    return 0


def _run_upgrade(settings: Settings, version: str, dim: int, reason: str) -> int:
    db = get_database(settings.db_url)
    mv_id = version_id(db, version)
    index = VectorIndex.open(settings.index_dir, version, dim)
    if mv_id is None or upgrade_reason(settings, db, mv_id, index) is None:
        log.info("index %s: no longer needs a rebuild", version)
        return 0
    del index  # the old index is not needed while the new one is built
    try:
        _rebuild_locked(settings, version, dim, None, reason)
    except Exception:  # noqa: BLE001 - recorded in the status file; the old index keeps serving
        log.exception("index %s: background rebuild failed", version)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
