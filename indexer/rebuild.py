"""Rebuilding a version's index from the embedding store: on demand, or in the background when
the collection outgrows it.

``tagscope index rebuild`` runs :func:`rebuild_index` in the foreground. During tagging, every
merge (:func:`indexer.sync.sync_index`) asks :func:`indexer.status.upgrade_reason` whether the index still suits
the store (:func:`indexer.kinds.rebuild_reason`: with ``index_kind = auto`` a flat index past
5x10^4 vectors, inverted lists 4x off their best count, an hnsw graph a fifth tombstones) and, if
not, :func:`start_upgrade_if_needed` starts ``python -m indexer.rebuild`` as a separate process at
lower CPU priority: FAISS training never competes with the tagging process's own threads or
holds up its merges, and a rebuild outlives the worker that started it. Searches keep using the
old index until the new one replaces it atomically.

Tagging goes on during a rebuild. A rebuild notes the head of the index change log
(:mod:`indexer.log`) before it reads the store, and tells the database that its copy stands
there (so no trim drops the entries it will need); after filling the new index from a scan of
the store, it applies every entry after that head (reading each image's current state: replays
are harmless) under the index lock and swaps. So nothing stored during the rebuild is missed,
and merges into the old index meanwhile change nothing for it.

Each rebuild writes ``<version>.rebuild.json`` next to the index (state, reason, kind, size,
seconds, error) and logs to ``<version>.rebuild.log``; ``tagscope index status`` shows both. A
failed background rebuild is retried after :data:`RETRY_AFTER_S`.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from core.db import Database
from core.settings import Settings, load_settings
from indexer import ann, files, kinds, store
from indexer import log as index_log
from indexer.kinds import IndexShape
from indexer.locks import file_lock, index_lock, rebuild_lock_path
from indexer.merge import apply_changes
from indexer.status import upgrade_reason, wanted_kind
from indexer.store import StoreVersion
from indexer.vector_index import VectorIndex
from migrations import get_database

log = logging.getLogger(__name__)

RETRY_AFTER_S = 600.0  # a failed background rebuild is tried again after this long
SPAWN_SPACING_S = 30.0  # one process starts at most one rebuild of a version per this long
NICE = 10  # background rebuilds run at lower CPU priority than tagging
_ROOT = Path(__file__).resolve().parent.parent
_spawned: dict[tuple[str, str], float] = {}  # (index folder, version) -> when
_children: list[subprocess.Popen] = []


def rebuild_index(settings: Settings, db: Database, mv: StoreVersion, kind: str | None = None,
                  reason: str = "asked for") -> int:
    """Build the index of ``mv`` from the embedding store alone (no photo is read) and swap it in
    atomically; returns its size. ``kind``: flat, hnsw, ivfpq, or auto (default: the
    ``index_kind`` setting) to choose by size (:func:`indexer.kinds.choose_kind`); an approximate
    kind trains on a random sample of stored embeddings. Waits for a rebuild already running."""
    with file_lock(rebuild_lock_path(settings.index_dir, mv.version)):
        return _rebuild_locked(settings, db, mv, kind, reason)


def _rebuild_locked(settings: Settings, db: Database, mv: StoreVersion, kind: str | None, reason: str) -> int:
    """The rebuild itself; the caller holds the rebuild lock."""
    t0 = time.time()
    folder = settings.index_dir
    start = index_log.head(db, mv.id)  # the store read below holds every entry up to here
    index_log.report(db, index_log.copy_name(folder), mv.id, start, 0, "rebuilding")
    n = store.count(db, mv.id)
    asked = kind or wanted_kind(settings, mv.version)
    kind = kinds.resolve_kind(asked, n)
    status = {"state": "running", "reason": reason, "asked": asked, "kind": kind, "stored": n, "started_at": t0,
              "pid": os.getpid()}
    files.write_rebuild_record(folder, mv.version, status)
    try:
        want = kinds.train_size(kind, n)
        index = VectorIndex.build(folder, mv.version, mv.dim, kind, n,
                                  store.sample(db, mv.id, mv.dim, want) if want else None)
        for ids, vectors, _ in store.scan(db, mv.id, mv.dim):
            index.extend(ids, vectors)
        with index_lock(folder, mv.version):
            index.position = start
            apply_changes(db, index, mv.id)
            index.save()
        index_log.report(db, index_log.copy_name(folder), mv.id, index.position, len(index), "")
    except BaseException as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        files.write_rebuild_record(folder, mv.version, status | {"state": "failed", "finished_at": time.time(),
                                                                  "error": error})
        raise
    done = {"state": "done", "size": len(index), "finished_at": time.time(), "seconds": round(time.time() - t0, 3)}
    files.write_rebuild_record(folder, mv.version, status | done)
    log.info("index %s: rebuilt as %s with %d vectors (%s)", mv.version, index.factory, len(index), reason)
    return len(index)


def start_upgrade_if_needed(settings: Settings, db: Database, mv: StoreVersion, shape: IndexShape) -> int | None:
    """Start a background rebuild of ``mv`` when :func:`indexer.status.upgrade_reason` gives one
    for its index of ``shape`` and none runs (nor failed within :data:`RETRY_AFTER_S`); returns
    the new process's pid, or None."""
    _reap()
    reason = upgrade_reason(settings, db, mv, shape)
    key = (str(settings.index_dir.resolve()), mv.version)
    if reason is None or time.monotonic() - _spawned.get(key, -SPAWN_SPACING_S) < SPAWN_SPACING_S:
        return None
    last = files.rebuild_status(settings.index_dir, mv.version)
    if last.get("running") or (last.get("state") == "failed"
                               and time.time() - last.get("finished_at", 0) < RETRY_AFTER_S):
        return None
    _spawned[key] = time.monotonic()
    return _spawn(settings, mv, reason)


def _spawn(settings: Settings, mv: StoreVersion, reason: str) -> int:
    env = dict(os.environ, TAGSCOPE_HOME=str(settings.home.resolve()), TAGSCOPE_DATABASE_URL=settings.db_url,
               TAGSCOPE_INDEX_KIND=settings.index_kind,
               # FAISS's OpenMP threads otherwise spin-wait, and lose 20x on cores tagging keeps busy
               # (docs/benchmarks.md, "Search index").
               OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.index_dir / f"{mv.version}.rebuild.log", "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "indexer.rebuild", mv.version, "--reason", reason],
                                env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, close_fds=True)
    _children.append(proc)
    log.info("index %s: rebuilding in the background (pid %d): %s", mv.version, proc.pid, reason)
    return proc.pid


def _reap() -> None:
    """Collect background rebuilds that ended (no zombies in a long-lived worker)."""
    _children[:] = [p for p in _children if p.poll() is None]


def main(argv: list[str] | None = None) -> int:
    """``python -m indexer.rebuild VERSION``: one background rebuild (started by a merge)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("version")
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
                return _run_upgrade(settings, args.version, args.reason)
        time.sleep(0.1)
    log.info("index %s: another rebuild is running", args.version)
    return 0


def _run_upgrade(settings: Settings, version: str, reason: str) -> int:
    db = get_database(settings.db_url)
    mv = store.find_version(db, version)
    if mv is None:
        log.info("index %s: no such model version", version)
        return 0
    # An index saved without its kind in the metadata (an early release) is asked directly.
    shape = files.saved_shape(settings.index_dir, version) or ann.shape_of(
        VectorIndex.open(settings.index_dir, version, mv.dim).index)
    if upgrade_reason(settings, db, mv, shape) is None:
        log.info("index %s: no longer needs a rebuild", version)
        return 0
    try:
        _rebuild_locked(settings, db, mv, None, reason)
    except Exception:  # noqa: BLE001 - recorded in the status file; the old index keeps serving
        log.exception("index %s: background rebuild failed", version)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
