"""Search among the photos passing some filters: the best candidates of a query embedding that
pass, by an index copy or exactly from the store (:meth:`indexer.search.searcher.Searcher.candidates`).

The ids that pass are read once (up to ``FILTER_IDS``). When few pass (at most ``FILTER_EXACT``,
and at most a ``FILTER_EXACT_SHARE``-th of the index or ``FILTER_EXACT_ALWAYS``) they are scored
exactly; else the index's candidates are checked against them, the pool sized by the share that
passes and growing fourfold until enough pass or it spans the whole index (so a filter keeping
0.1% of a large library still fills the page). When more than ``FILTER_IDS`` pass, the candidates
are checked in SQL instead. Those that pass are scored by the model (:func:`indexer.search.scoring.rerank`).
"""

from __future__ import annotations

import numpy as np
import torch

from core.db import Database
from indexer import kinds
from indexer.search import filters as flt
from indexer.search import follow
from indexer.search.checks import MAX_POOL, RERANK_POOL
from indexer.search.filters import Filters
from indexer.search.scoring import rerank
from indexer.vector_index import VectorIndex
from mkt.tagmodel import TagModel

FILTER_EXACT = 20_000  # a filter passing at most this many photos is searched exactly over them
FILTER_EXACT_SHARE = 50  # ... when they are also at most 1/50 of the index (or FILTER_EXACT_ALWAYS)
FILTER_EXACT_ALWAYS = 1_000
FILTER_IDS = 200_000  # the ids of at most this many photos passing a filter are read (1.6 MB)
FILTER_EXACT_PATCHES = 2_000  # the same for MKT text queries (patch features: ~200 KiB a photo at ViT-B/16)

Ranked = tuple[np.ndarray, np.ndarray]  # (ids, scores), best first


def through_index(index: VectorIndex, db: Database, model: TagModel, version_id: int, query: torch.Tensor,
                  n: int, filters: Filters, by_model: bool) -> Ranked:
    """The best ``n`` (ids, scores) passing ``filters`` for a query embedding [1, D], from the
    candidates of ``index`` (or, when few pass, all of them scored exactly)."""
    size = len(index)
    patched = by_model and model.local_top_k > 0  # scoring reads each photo's patch features
    limit = min(FILTER_EXACT_PATCHES if patched else FILTER_EXACT,
                max(FILTER_EXACT_ALWAYS, size // FILTER_EXACT_SHARE))
    allowed = flt.allowed_ids(db, filters, version_id, FILTER_IDS)
    if allowed is not None and len(allowed) <= limit:
        ids, scores = rerank(model, db, version_id, allowed, query, by_model)
        return ids[:n], scores[:n]
    want = max(n, RERANK_POOL if by_model else n)  # the model re-ranks the best that pass
    # the first pool should hold enough that pass: sized by the share that does (when more
    # than FILTER_IDS pass it is unknown, and at least that: start as if a quarter did)
    share = len(allowed) / max(size, 1) if allowed is not None else max(FILTER_IDS / max(size, 1), 0.25)
    pool = min(size, max(want, int(want / max(share, 1e-9) * 1.5) * kinds.SPECS[index.kind].oversample))
    seen = np.zeros(0, np.int64)
    passing: list[np.ndarray] = []
    while True:
        _, ids = index.search(query.numpy(), max(pool, 1))
        fresh = ids[0][(ids[0] >= 0) & ~np.isin(ids[0], seen)]
        seen = np.concatenate([seen, fresh])
        if allowed is not None:
            passing.append(fresh[np.isin(fresh, allowed)])
        else:
            keep = flt.keep(db, filters, version_id, fresh.tolist())
            passing.append(fresh[np.fromiter((int(i) in keep for i in fresh), bool, len(fresh))])
        if sum(map(len, passing)) >= want or pool >= size:
            break
        pool = min(size, pool * 4)
    ids, scores = rerank(model, db, version_id, np.concatenate(passing)[:max(want, 2 * n)], query, by_model)
    return ids[:n], scores[:n]


def from_store(db: Database, model: TagModel, version_id: int, query: torch.Tensor, n: int, filters: Filters,
               by_model: bool) -> Ranked:
    """:func:`through_index` while this machine has no usable index copy: exact, from the store."""
    allowed = flt.allowed_ids(db, filters, version_id, FILTER_IDS)
    if allowed is None:  # very many pass: the store's best, then the filter
        best, _ = follow.exact_top(db, version_id, model.embed_dim, query, max(50 * n, MAX_POOL))
        keep = flt.keep(db, filters, version_id, best.tolist())
        allowed = np.asarray([i for i in best if int(i) in keep], np.int64)
    ids, scores = rerank(model, db, version_id, allowed, query, by_model)
    return ids[:n], scores[:n]
