"""Applying pending index changes: the one step merges and rebuilds share.

Every change the index must follow writes an ``index_changes`` row (:mod:`indexer.store`).
Applying reads the CURRENT state of each changed image (tagged with a stored embedding: upsert;
anything else: remove), so replaying a row is harmless and order does not matter.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select

from core.db import Database, IndexChange
from indexer import store
from indexer.vector_index import VectorIndex

MERGE_BATCH = 50_000  # changes applied per round


def apply_changes(db: Database, index: VectorIndex, mv_id: int, keep_rows: bool = False) -> int:
    """Apply pending changes to ``index`` round by round: read the changed images' current state,
    update the index, save it, and only then delete the change rows (not with ``keep_rows``: a
    rebuild is reading the store and will apply them to its new index). The caller holds the
    index lock. Returns how many were applied."""
    applied, last = 0, 0
    while True:
        with db.session() as s:
            rows = s.execute(select(IndexChange.id, IndexChange.image_id)
                             .where(IndexChange.model_version_id == mv_id, IndexChange.id > last)
                             .order_by(IndexChange.id).limit(MERGE_BATCH)).all()
        if not rows:
            return applied
        last = rows[-1][0]
        changed = np.unique(np.asarray([image_id for _, image_id in rows], dtype=np.int64))
        ids, vectors = store.get(db, mv_id, changed.tolist(), index.dim)
        index.remove(np.setdiff1d(changed, ids))
        index.add(ids, vectors)
        index.save()
        applied += len(rows)
        if keep_rows:
            continue
        with db.session() as s:
            for chunk in store.chunks([change_id for change_id, _ in rows]):
                s.execute(delete(IndexChange).where(IndexChange.id.in_(chunk)))
