"""Applying the index change log to one copy of the index: the step merges and rebuilds share.

Every change the index must follow appends a log entry (:mod:`indexer.log`). Applying reads the
entries after the copy's position and the CURRENT state of each changed image (tagged with a
stored embedding: upsert; anything else: remove), so replaying an entry is harmless and a copy
that crashed mid-way applies the same entries again. Entries are never deleted here: other
copies may still need them (:func:`indexer.log.trim` drops them).
"""

from __future__ import annotations

import numpy as np

from core.db import Database
from indexer import log as index_log
from indexer import store
from indexer.vector_index import VectorIndex


def apply_changes(db: Database, index: VectorIndex, mv_id: int) -> int:
    """Apply the log entries after ``index.position`` round by round: read the changed images'
    current state, update the index, move its position and save it. The caller holds the index
    lock. Returns how many entries were applied."""
    applied = 0
    while True:
        rows = index_log.since(db, mv_id, index.position)
        if not rows:
            return applied
        changed = np.unique(np.asarray([image_id for _, image_id in rows], dtype=np.int64))
        ids, vectors = store.get(db, mv_id, changed.tolist(), index.dim)
        index.remove(np.setdiff1d(changed, ids))
        index.add(ids, vectors)
        index.position = rows[-1][0]
        index.save()
        applied += len(rows)
