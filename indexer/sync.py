"""Keeping the vector index (a cache) in step with the embedding store (the truth).

Writers never touch the index: storing, replacing or dropping an embedding also writes an
``index_changes`` row (:mod:`indexer.store`). Whoever holds the index lock of a model version
applies the pending changes (:func:`sync_index`): for each changed image it reads the CURRENT
state (tagged with a stored embedding: upsert; anything else: remove), saves the index
atomically, then deletes the rows it applied. Reading state instead of replaying operations
makes a merge idempotent and order-free: a crash anywhere means the next merge does it again.
During a job, tasks merge every few seconds (:func:`maybe_sync`), so tagged images become
searchable while the job runs; the web process reloads the index file when it changes.
:func:`rebuild_index` builds the index from the store alone, without reading a photo.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from core.db import Database, Embedding, IndexChange, ModelVersion, get_database
from core.settings import Settings
from indexer import ann, store
from indexer.vector_index import VectorIndex

log = logging.getLogger(__name__)

MERGE_BATCH = 50_000  # changes applied per round
MIN_MERGE_INTERVAL_S = 2.0


@contextmanager
def index_lock(folder: str | Path, version: str, blocking: bool = True) -> Iterator[bool]:
    """Exclusive lock on one version's index (a file lock, so it also holds across processes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{version}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _version_id(db: Database, version: str) -> int | None:
    with db.session() as s:
        return s.scalar(select(ModelVersion.id).where(ModelVersion.version == version))


def _apply_changes(db: Database, index: VectorIndex, mv_id: int) -> int:
    """Apply pending changes to ``index`` round by round: read the changed images' current state,
    update the index, save it, and only then delete the change rows. Returns how many were applied."""
    applied = 0
    while True:
        with db.session() as s:
            rows = s.execute(select(IndexChange.id, IndexChange.image_id).where(IndexChange.model_version_id == mv_id)
                             .order_by(IndexChange.id).limit(MERGE_BATCH)).all()
        if not rows:
            return applied
        changed = np.unique(np.asarray([image_id for _, image_id in rows], dtype=np.int64))
        ids, vectors = store.get(db, mv_id, changed.tolist(), index.dim)
        index.remove(np.setdiff1d(changed, ids))
        index.add(ids, vectors)
        index.save()
        with db.session() as s:
            for chunk in store.chunks([change_id for change_id, _ in rows]):
                s.execute(delete(IndexChange).where(IndexChange.id.in_(chunk)))
        applied += len(rows)


def sync_index(settings: Settings, version: str, dim: int, blocking: bool = True) -> int | None:
    """Apply the pending changes of ``version`` to its index and save it. Returns the number of
    changes applied, or None when another process holds the lock and ``blocking`` is False."""
    db = get_database(settings.db_url)
    mv_id = _version_id(db, version)
    if mv_id is None:
        return 0
    with index_lock(settings.index_dir, version, blocking) as locked:
        if not locked:
            return None
        with db.session() as s:
            if not s.scalar(select(func.count()).select_from(IndexChange).where(IndexChange.model_version_id == mv_id)):
                return 0
        index = VectorIndex.open(settings.index_dir, version, dim)
        applied = _apply_changes(db, index, mv_id)
        log.info("index %s: applied %d changes (%d vectors)", version, applied, len(index))
    upgrade_in_background(settings, version, dim, len(index), index.kind)
    return applied


_last_merge: dict[str, float] = {}
_merge_cost: dict[str, float] = {}
_merge_guard = threading.Lock()


def maybe_sync(settings: Settings, version: str, dim: int) -> int | None:
    """A merge during a job: skipped when one ran recently here (at least every
    MIN_MERGE_INTERVAL_S, and never more than ~10% of the time: a big index costs seconds to save)
    or when another process is merging."""
    now = time.monotonic()
    with _merge_guard:
        wait = max(MIN_MERGE_INTERVAL_S, 10 * _merge_cost.get(version, 0.0))
        if now - _last_merge.get(version, 0.0) < wait:
            return None
        _last_merge[version] = now
    applied = sync_index(settings, version, dim, blocking=False)
    _merge_cost[version] = time.monotonic() - now
    return applied


def rebuild_index(settings: Settings, version: str, dim: int, kind: str | None = None) -> int:
    """Build the index of ``version`` from the embedding store alone (no photo is read) and swap it
    in atomically; returns its size. ``kind``: flat, hnsw, ivfpq, or auto (default: the
    ``index_kind`` setting) to choose by size (:func:`indexer.ann.choose_kind`); an approximate
    kind trains on a random sample of stored embeddings. Pending changes stay queued:
    re-applying them is harmless."""
    db = get_database(settings.db_url)
    mv_id = _version_id(db, version)
    n = store.count(db, mv_id) if mv_id is not None else 0
    kind = kind or settings.index_kind
    kind = ann.choose_kind(n) if kind == "auto" else kind
    want = ann.train_size(kind, n)
    index = VectorIndex.build(settings.index_dir, version, dim, kind, n,
                              store.sample(db, mv_id, dim, want) if want and mv_id is not None else None)
    # Under the lock: a merge meanwhile could apply (and delete) a change this snapshot misses.
    with index_lock(settings.index_dir, version):
        if mv_id is not None:
            for ids, vectors, _ in store.scan(db, mv_id, dim):
                index.add(ids, vectors)
        index.save()
    log.info("index %s: rebuilt as %s with %d vectors", version, index.factory, len(index))
    return len(index)


_upgrading: set[str] = set()


def upgrade_in_background(settings: Settings, version: str, dim: int, size: int, kind: str) -> bool:
    """With ``index_kind = auto``, when the collection outgrew its index kind (flat past 5x10^4
    vectors, say), rebuild it as the kind its size calls for in a background thread; searches
    keep using the old index until the new one is swapped in. True when a rebuild started."""
    if settings.index_kind != "auto" or ann.choose_kind(size) == kind:
        return False
    with _merge_guard:
        if version in _upgrading:
            return False
        _upgrading.add(version)

    def run() -> None:
        try:
            rebuild_index(settings, version, dim)
        except Exception:  # noqa: BLE001 - a failed upgrade leaves the old index serving
            log.exception("background index rebuild of %s failed", version)
        finally:
            _upgrading.discard(version)

    threading.Thread(target=run, name=f"index-upgrade-{version}", daemon=True).start()
    return True


def index_status(settings: Settings, version: str, dim: int) -> dict[str, Any]:
    """Kind, size, memory, and freshness (changes not yet applied, embeddings stored) of one index."""
    db = get_database(settings.db_url)
    mv_id = _version_id(db, version)
    index = VectorIndex.open(settings.index_dir, version, dim)
    with db.session() as s:
        pending = s.scalar(select(func.count()).select_from(IndexChange)
                           .where(IndexChange.model_version_id == mv_id)) or 0
        stored = s.scalar(select(func.count()).select_from(Embedding)
                          .where(Embedding.model_version_id == mv_id)) or 0
    exists = index.path.exists()
    return {"version": version, "kind": index.kind, "factory": index.factory, "size": len(index), "dim": dim,
            "path": str(index.path) if exists else None,
            "file_bytes": index.path.stat().st_size if exists else 0,
            "saved_at": index.path.stat().st_mtime if exists else None,
            "pending_changes": int(pending), "stored_embeddings": int(stored), "fresh": pending == 0}
