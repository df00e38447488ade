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

from core.db import Database
from core.settings import Settings
from indexer import ann, store
from indexer.locks import index_lock, is_held, rebuild_lock_path
from indexer.merge import apply_changes
from indexer.rebuild import start_upgrade_if_needed
from indexer.store import StoreVersion
from indexer.vector_index import VectorIndex

log = logging.getLogger(__name__)

MIN_MERGE_INTERVAL_S = 2.0


def sync_index(settings: Settings, db: Database, mv: StoreVersion, blocking: bool = True) -> int | None:
    """Apply the pending changes of ``mv`` to its index and save it. Returns the number of changes
    applied, or None when another process holds the lock and ``blocking`` is False."""
    with index_lock(settings.index_dir, mv.version, blocking) as locked:
        if not locked:
            return None
        if not store.pending_changes(db, mv.id):
            return 0
        index = VectorIndex.open(settings.index_dir, mv.version, mv.dim)
        # Checked under the index lock: a rebuild takes this lock once after its own (a barrier),
        # so either this merge ends before its snapshot or it sees the rebuild and keeps its rows.
        rebuilding = is_held(rebuild_lock_path(settings.index_dir, mv.version))
        applied = apply_changes(db, index, mv.id, keep_rows=rebuilding)
        log.info("index %s: applied %d changes (%d vectors)", mv.version, applied, len(index))
    if not rebuilding:
        start_upgrade_if_needed(settings, db, mv, ann.shape_of(index.index))
    return applied


# Per (index folder, version): one process may serve several collections (a web app, tests).
_last_merge: dict[tuple[str, str], float] = {}
_merge_cost: dict[tuple[str, str], float] = {}
_merge_guard = threading.Lock()


def maybe_sync(settings: Settings, db: Database, mv: StoreVersion) -> int | None:
    """A merge during a job: skipped when one ran recently here (at least every
    MIN_MERGE_INTERVAL_S, and never more than ~10% of the time: a big index costs seconds to save)
    or when another process is merging."""
    now = time.monotonic()
    key = (str(settings.index_dir), mv.version)
    with _merge_guard:
        wait = max(MIN_MERGE_INTERVAL_S, 10 * _merge_cost.get(key, 0.0))
        if now - _last_merge.get(key, 0.0) < wait:
            return None
        _last_merge[key] = now
    applied = sync_index(settings, db, mv, blocking=False)
    _merge_cost[key] = time.monotonic() - now
    return applied
