"""Keeping the vector index (a cache) in step with the embedding store (the truth).

Writers never touch the index: storing, replacing or dropping an embedding also writes an
``index_changes`` row (:mod:`indexer.store`). Whoever holds the index lock of a model version
applies the pending changes (:func:`sync_index`): for each changed image it reads the CURRENT
state (tagged with a stored embedding: upsert; anything else: remove), saves the index
atomically, then deletes the rows it applied. Reading state instead of replaying operations
makes a merge idempotent and order-free: a crash anywhere means the next merge does it again.
During a job, tasks merge every few seconds (:func:`maybe_sync`), so tagged images become
searchable while the job runs; the web process reloads the index file when it changes.
:func:`indexer.rebuild.rebuild_index` builds the index from the store alone, without reading a
photo; after a merge, :func:`indexer.rebuild.start_upgrade_if_needed` starts one in the background
when the collection outgrew its index.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import func, select

from core.db import Embedding, IndexChange, get_database
from core.settings import Settings
from indexer.locks import index_lock, is_held, rebuild_lock_path
from indexer.merge import apply_changes, version_id
from indexer.rebuild import rebuild_status, start_upgrade_if_needed, upgrade_reason
from indexer.vector_index import VectorIndex

log = logging.getLogger(__name__)

MIN_MERGE_INTERVAL_S = 2.0


def sync_index(settings: Settings, version: str, dim: int, blocking: bool = True) -> int | None:
    """Apply the pending changes of ``version`` to its index and save it. Returns the number of
    changes applied, or None when another process holds the lock and ``blocking`` is False."""
    db = get_database(settings.db_url)
    mv_id = version_id(db, version)
    if mv_id is None:
        return 0
    with index_lock(settings.index_dir, version, blocking) as locked:
        if not locked:
            return None
        with db.session() as s:
            if not s.scalar(select(func.count()).select_from(IndexChange).where(IndexChange.model_version_id == mv_id)):
                return 0
        index = VectorIndex.open(settings.index_dir, version, dim)
        # Checked under the index lock: a rebuild takes this lock once after its own (a barrier),
        # so either this merge ends before its snapshot or it sees the rebuild and keeps its rows.
        rebuilding = is_held(rebuild_lock_path(settings.index_dir, version))
        applied = apply_changes(db, index, mv_id, keep_rows=rebuilding)
        log.info("index %s: applied %d changes (%d vectors)", version, applied, len(index))
    if not rebuilding:
        start_upgrade_if_needed(settings, version, dim, index)
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


def index_status(settings: Settings, version: str, dim: int) -> dict[str, Any]:
    """Kind, size, memory, and freshness (changes not yet applied, embeddings stored) of one
    index; ``rebuild``: the last rebuild's record and whether one runs; ``rebuild_wanted``: why
    the index should be rebuilt (a merge starts that in the background), or None."""
    db = get_database(settings.db_url)
    mv_id = version_id(db, version)
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
            "pending_changes": int(pending), "stored_embeddings": int(stored), "fresh": pending == 0,
            "rebuild": rebuild_status(settings.index_dir, version),
            "rebuild_wanted": upgrade_reason(settings, db, mv_id, index) if mv_id is not None else None}
