"""Index kinds for every collection size, and search that re-ranks ANN candidates exactly.

A pure library (numpy + FAISS, no SQL, no settings). Vectors are L2-normalised embeddings, so
inner product = cosine; ids are int64 SQL image ids. Three kinds, chosen by size
(:func:`choose_kind`, measured on this 2-core machine with ``python -m bench.search``; figures
in docs/benchmarks.md, "Search index") or forced:

- ``flat`` below 5x10^4: exact brute force (``IDMap2,Flat``, 2 KiB per vector). Its p50 grows
  linearly, ~5 ms at 5x10^4 and ~10 ms at 10^5, where the ANN kinds answer in under 1 ms.
- ``hnsw`` up to 2x10^5: a graph over 8-bit scalar-quantised vectors (``IDMap,HNSW32,SQ8``,
  ~0.8 KiB per vector), no training. Recall@10 0.986 at 10^5 but 0.956 at 3x10^5 and ~0.84 at
  10^6 on clustered data, where ivfpq does better from ~2x10^5 up. FAISS cannot delete from it:
  removed ids stay as tombstones that the re-rank (ids the store no longer has) and the
  caller's SQL filter drop; :func:`rebuild_reason` says when to rebuild.
- ``ivfpq`` above: ~sqrt(n) inverted lists under an HNSW coarse quantizer, holding 4-bit
  fast-scan PQ codes, one 4-bit code per 4 dimensions (``IVF{nlist}_HNSW32,PQ{dim/4}x4fsr``:
  75-80 B per vector at 512-d, ids included). The codes alone rank poorly (recall@10 0.35-0.69),
  so :func:`search` reads 20 candidates per result from the store and re-ranks them exactly
  (recall@10 0.985 at 10^6, 0.948 at 10^7, p50 0.76 / 1.27 ms).

The index is a cache: the durable float16 embedding store is the source of truth, and
:func:`search` re-reads the exact vectors of the ANN candidates from it (the ``exact``
callable) to return the exact top-k.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from core.errors import TagscopeError
from indexer.kinds import (
    ADD_BATCH,
    MAX_CANDIDATES,
    SPECS,
    IndexShape,
    factory_string,
    kind_spec,
    train_minimum,
)

METRIC = faiss.METRIC_INNER_PRODUCT

# An `exact` callable: ids [m] -> their stored vectors [m, dim] (float16 or float32), a NaN row for
# an id the store no longer holds.
ExactFn = Callable[[np.ndarray], np.ndarray]


def build_index(kind: str, dim: int, n_hint: int, sample: np.ndarray | None = None) -> faiss.Index:
    """An empty index of ``kind`` sized for about ``n_hint`` vectors, trained on ``sample`` (a
    random sample of stored embeddings, :func:`train_size` rows) when the kind needs training,
    with its search parameters set. Fill it with :func:`add`."""
    index = faiss.index_factory(dim, factory_string(kind, n_hint, dim), METRIC)
    if not index.is_trained:
        need = max(1, train_minimum(kind, n_hint))
        have = 0 if sample is None else len(sample)
        if have < need:
            raise TagscopeError(f"a {kind} index needs at least {need} stored embeddings to train on, "
                                f"{have} given: use --kind flat or hnsw for a collection this small")
        index.train(_as_matrix(sample, dim))
    apply_search_params(index, kind)
    return index


def apply_search_params(index: faiss.Index, kind: str | None = None) -> None:
    """Set the measured search parameters of ``kind`` (default: the kind of ``index``); call it
    again after :func:`faiss.read_index` so an index saved by an older release searches as now."""
    params = kind_spec(kind or kind_of(index)).search_params
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)


def shape_of(index: faiss.Index) -> IndexShape:
    """The :class:`indexer.kinds.IndexShape` of a loaded index."""
    kind = kind_of(index)
    nlist = int(faiss.extract_index_ivf(index).nlist) if kind == "ivfpq" else 0
    return IndexShape(kind, int(index.ntotal), nlist)


def kind_of(index: faiss.Index) -> str:
    """Which of :data:`KINDS` ``index`` is (after loading one from disk, say)."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivfpq"
    raise ValueError(f"not an index this module builds: {type(inner).__name__}")


def _inner(index: faiss.Index) -> faiss.Index:
    """The index inside an id map (flat and hnsw keep SQL ids in one), downcast."""
    index = faiss.downcast_index(index)
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def add(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, batch: int = ADD_BATCH) -> None:
    """Add ``vectors`` under SQL ``ids``, ``batch`` rows at a time (float16 rows are converted one
    batch at a time, so a memmap of the store can be passed whole). Does not replace: remove an
    id first where the kind can (:func:`remove`); in hnsw the old entry stays as a tombstone."""
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if len(vectors) != len(ids):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    for start in range(0, len(ids), batch):
        index.add_with_ids(_as_matrix(vectors[start:start + batch], index.d), ids[start:start + batch])


def remove(index: faiss.Index, ids: np.ndarray) -> int:
    """Remove ``ids``; the number removed. 0 for hnsw, which cannot delete: its removed ids stay as
    tombstones that :func:`search` with ``exact`` (and the caller's SQL filter) drop."""
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if not len(ids) or not kind_spec(kind_of(index)).can_remove:
        return 0
    return int(index.remove_ids(ids))


def search(index: faiss.Index, queries: np.ndarray, k: int, exact: ExactFn | None = None,
           oversample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (scores, ids) of each query row, arrays of shape (len(queries), k) as FAISS
    returns them: best first, id -1 and score -inf in slots without a result.

    With ``exact`` (ids -> stored vectors, NaN rows for ids no longer stored) and an index that
    does not score exactly, the ANN gives ``k * oversample`` candidates per query (default: the
    kind's measured ``oversample``), ``exact`` is called once with the unique candidate ids of
    all queries, and the result is the top ``k`` by exact inner product; ids with NaN rows are
    dropped (tombstones). Flat indexes are exact: ``exact`` is not called. Without ``exact``,
    scores are the index's own (approximate for hnsw and ivfpq). Either way an id appears at
    most once per row."""
    queries = _as_matrix(np.asarray(queries).reshape(-1, index.d), index.d)
    k = max(int(k), 0)
    if k == 0 or index.ntotal == 0:
        return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    spec = SPECS[kind_of(index)]
    rerank = exact is not None and not spec.exact
    fetch = k * (oversample or spec.oversample) if rerank else k
    fetch = min(max(k, min(fetch, MAX_CANDIDATES)), int(index.ntotal))
    scores, ids = index.search(queries, fetch, params=_params_for(index, fetch))
    if rerank:
        scores = _exact_scores(queries, ids, exact)
    return _top_k(scores, ids, k)


def _params_for(index: faiss.Index, fetch: int) -> faiss.SearchParameters | None:
    """HNSW explores only ``efSearch`` nodes even when asked for more results: widen it to ``fetch``."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW) and fetch > inner.hnsw.efSearch:
        params = faiss.SearchParametersHNSW()
        params.efSearch = fetch
        return params
    return None


def _exact_scores(queries: np.ndarray, ids: np.ndarray, exact: ExactFn) -> np.ndarray:
    """Inner products of each query with the stored vectors of its candidates; -inf for empty
    slots and for ids the store no longer holds."""
    scores = np.full(ids.shape, -np.inf, np.float32)
    valid = ids >= 0
    unique, inverse = np.unique(ids[valid], return_inverse=True)
    if not len(unique):
        return scores
    vectors = np.asarray(exact(unique))
    if vectors.shape != (len(unique), queries.shape[1]):
        raise ValueError(f"exact() returned shape {vectors.shape} for {len(unique)} ids of dim {queries.shape[1]}")
    rows = np.nonzero(valid)[0]
    found = np.einsum("ij,ij->i", vectors.astype(np.float32, copy=False)[inverse], queries[rows])
    scores[valid] = np.where(np.isnan(found), -np.inf, found)
    return scores


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best distinct ids with a finite score, best first, padded with -1/-inf."""
    out_scores = np.full((len(ids), k), -np.inf, np.float32)
    out_ids = np.full((len(ids), k), -1, np.int64)
    for row, (s, i) in enumerate(zip(scores, ids)):
        order = np.argsort(-s, kind="stable")
        order = order[(i[order] >= 0) & np.isfinite(s[order]) & (s[order] > -np.finfo(np.float32).max)]
        _, first = np.unique(i[order], return_index=True)
        order = order[np.sort(first)][:k]
        out_scores[row, :len(order)] = s[order]
        out_ids[row, :len(order)] = i[order]
    return out_scores, out_ids


def index_memory_bytes(index: faiss.Index) -> int:
    """The index's size in RAM, taken as its serialized size (codes, ids, centroids, graph)."""
    return int(faiss.serialize_index(index).nbytes)


def _as_matrix(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {x.shape}")
    return x
