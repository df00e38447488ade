"""Keeping a copy of the vector index (a cache) in step with the embedding store (the truth).

Writers never touch the index: storing, replacing or dropping an embedding also appends an entry
to the version's index change log (:mod:`indexer.log`). Whoever holds the index lock of a copy
(a folder) applies the entries after that copy's position (:func:`sync_index`): for each changed
image it reads the CURRENT state (tagged with a stored embedding: upsert; anything else: remove),
saves the index with its new position atomically, and tells the database how far it got. Reading
state instead of replaying operations makes a merge idempotent: a crash anywhere means the next
merge does it again. Each machine's copy follows the log on its own; none consumes another's
entries. A copy with no file yet (a new search server) or behind the log's floor (silent for
longer than the log keeps entries) is rebuilt from the store instead. During a job, tasks merge
every few seconds (:func:`maybe_sync`), so tagged images become searchable while the job runs; a
web process reloads the index file when it changes. :func:`indexer.rebuild.rebuild_index` builds
the index from the store alone, without reading a photo; after a merge,
:func:`indexer.rebuild.start_upgrade_if_needed` starts one in the background when the collection
outgrew its index.
"""

from __future__ import annotations

import logging
import threading
import time

from core.db import Database
from core.settings import Settings
from indexer import ann, files
from indexer import log as index_log
from indexer.damage import set_aside
from indexer.locks import index_lock
from indexer.merge import apply_changes
from indexer.rebuild import rebuild_index, start_upgrade_if_needed
from indexer.store import StoreVersion
from indexer.vector_index import IndexDamaged, IndexSaveFailed, VectorIndex

log = logging.getLogger(__name__)

MIN_MERGE_INTERVAL_S = 2.0


def sync_index(settings: Settings, db: Database, mv: StoreVersion, blocking: bool = True, role: str = "",
               build: bool = True) -> int | None:
    """Bring this machine's copy of ``mv``'s index (in ``settings.index_dir``) up to the head of
    the log, or rebuild it from the store when it has no file, fell behind the log's floor or its
    file is damaged (set aside: :mod:`indexer.damage`); with ``build`` False such a copy is left
    for the caller to build elsewhere (a reader: :func:`indexer.search.follow.catch_up`).
    Returns the number of entries applied (or the rebuilt size), or None when another process
    holds the lock and ``blocking`` is False, or a rebuild is left to others."""
    folder = settings.index_dir
    with index_lock(folder, mv.version, blocking) as locked:
        if not locked:
            return None
        saved, position = files.saved_position(folder, mv.version)
        floor = index_log.floor(db, mv.id)
        # no file and a log that starts at the beginning: apply it all; a file saved before the log
        # had positions applied everything up to the floor (it deleted what it applied)
        position = floor if saved and position is None else position
        damaged = files.damage_record(folder, mv.version).get("error")  # set aside: rebuilt whole
        rebuild = (not saved and (floor > 0 or bool(damaged))) or (saved and position < floor)
        if not rebuild:
            if saved and index_log.head(db, mv.id) <= position:
                index_log.report(db, index_log.copy_name(folder), mv.id, position,
                                 files.saved_count(folder, mv.version), role)
                return 0
            try:
                index = VectorIndex.open(folder, mv.version, mv.dim)
            except IndexDamaged as exc:  # set aside (:mod:`indexer.damage`), rebuilt from the store below
                set_aside(folder, mv.version, mv.dim, str(exc), locked=True)
                rebuild, damaged = True, str(exc)
            else:
                index.position = position or 0
                applied = apply_changes(db, index, mv.id)
                index_log.report(db, index_log.copy_name(folder), mv.id, index.position, len(index), role)
                log.info("index %s: applied %d changes (%d vectors)", mv.version, applied, len(index))
    if rebuild:
        if not build or (damaged and files.rebuilding(folder, mv.version)):
            return None  # built elsewhere: a running rebuild of the damaged file, or the caller's (a reader's)
        return rebuild_index(settings, db, mv, reason=f"the index file was damaged: {damaged}" if damaged
                             else "behind the change log's floor" if saved else "no index here yet")
    index_log.trim(db, mv.id)
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
    try:
        applied = sync_index(settings, db, mv, blocking=False, role="worker")
    except IndexSaveFailed as exc:  # a full disk: the store holds it all, the next merge saves again
        log.error("index %s: %s", mv.version, exc)
        applied = None
    _merge_cost[key] = time.monotonic() - now
    return applied
