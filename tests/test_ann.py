"""indexer.ann: every kind builds, keeps SQL ids, re-ranks to the exact top-k, removes, round-trips."""

from __future__ import annotations

from functools import cache

import faiss
import numpy as np
import pytest

from core.errors import TagscopeError
from indexer import ann, kinds

ID_BASE = 10**12  # SQL ids far from row numbers, so a row/id mix-up shows


def clustered(n: int, dim: int, stream: int = 0, clusters: int = 40, noise: float = 0.6) -> np.ndarray:
    """Unit vectors around ``clusters`` fixed random centres (cosine ~0.85 to their centre);
    another ``stream`` gives other points around the same centres."""
    centres = np.random.default_rng(0).standard_normal((clusters, dim)) / np.sqrt(dim)
    rng = np.random.default_rng([1, stream])
    x = centres[rng.integers(clusters, size=n)] + noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Store:
    """The embedding store as the re-rank sees it: ids -> float16 rows, NaN for ids not stored."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.rows = {int(i): r for r, i in enumerate(ids)}
        self.vectors = vectors.astype(np.float16)
        self.calls: list[np.ndarray] = []

    def drop(self, ids: np.ndarray) -> None:
        for i in ids:
            self.rows.pop(int(i))

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        self.calls.append(ids)
        out = np.full((len(ids), self.vectors.shape[1]), np.nan, np.float16)
        for j, i in enumerate(ids):
            if int(i) in self.rows:
                out[j] = self.vectors[self.rows[int(i)]]
        return out


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """FAISS's OpenMP threads spin when the machine is busy; one thread keeps these tests fast."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@cache
def _built(kind: str, n: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = clustered(n, dim).astype(np.float16).astype(np.float32)  # what the store holds
    ids = ID_BASE + 3 * np.arange(n, dtype=np.int64)
    sample = x[np.random.default_rng(1).choice(n, kinds.train_size(kind, n), replace=False)]
    index = ann.build_index(kind, dim, n, sample)
    ann.add(index, ids, x, batch=1_000)
    return faiss.serialize_index(index), ids, x


def built(kind: str, n: int = 3_000, dim: int = 32) -> tuple[faiss.Index, np.ndarray, np.ndarray]:
    """A fresh copy of an index of ``kind`` holding ``n`` clustered vectors under SQL ids, with
    those ids and vectors (built once per test module)."""
    data, ids, x = _built(kind, n, dim)
    index = faiss.deserialize_index(data)
    ann.apply_search_params(index)
    return index, ids, x


def brute_force(x: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ x.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, 1), ids[top]


def test_choose_kind_goes_flat_then_hnsw_then_ivfpq():
    assert kinds.choose_kind(0) == "flat"
    assert kinds.choose_kind(kinds.FLAT_MAX - 1) == "flat"
    assert kinds.choose_kind(kinds.FLAT_MAX) == "hnsw"
    assert kinds.choose_kind(kinds.HNSW_MAX) == "hnsw"
    assert kinds.choose_kind(kinds.HNSW_MAX + 1) == "ivfpq"
    assert kinds.choose_kind(10**8) == "ivfpq"
    assert 10_000 <= kinds.FLAT_MAX < kinds.HNSW_MAX <= 10**7


def test_lists_grow_with_size_and_training_asks_30_to_256_per_list():
    assert kinds.n_lists(10**6) < kinds.n_lists(10**7) < kinds.n_lists(10**8)
    for n in (10**5, 10**6, 10**7, 10**8):
        assert 30 * kinds.n_lists(n) <= kinds.train_size("ivfpq", n) <= 256 * kinds.n_lists(n)
    assert kinds.train_size("flat", 10**6) == 0
    assert kinds.factory_string("ivfpq", 10**7, 512).startswith(f"IVF{kinds.n_lists(10**7)}_HNSW32,PQ")


def test_unknown_kind_names_the_kinds():
    with pytest.raises(TagscopeError, match="auto, flat, hnsw, ivfpq"):
        kinds.factory_string("lsh", 10, 8)


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_every_kind_finds_a_vectors_own_sql_id_first(kind):
    index, ids, x = built(kind)
    assert ann.kind_of(index) == kind
    assert index.ntotal == len(ids)
    store = Store(ids, x)
    scores, found = ann.search(index, x[:50], 5, exact=store)
    assert found.dtype == np.int64 and found.shape == (50, 5)
    assert (found[:, 0] == ids[:50]).all()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=2e-3)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_ann_search_with_rerank_returns_the_exact_top_k(kind):
    index, ids, x = built(kind, n=5_000, dim=512)
    queries = clustered(100, 512, stream=7)  # held-out points near the same clusters
    store = Store(ids, x)
    scores, found = ann.search(index, queries, 10, exact=store)
    want_scores, want = brute_force(x, ids, queries, 10)
    assert (found == want).all()
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert len(store.calls) == 1  # one read of the store for the whole batch, unique ids
    assert len(np.unique(store.calls[0])) == len(store.calls[0])


def test_flat_is_exact_without_reading_the_store():
    index, ids, x = built("flat")
    store = Store(ids, x)
    scores, found = ann.search(index, x[:20], 10, exact=store)
    assert store.calls == []
    want_scores, want = brute_force(x, ids, x[:20], 10)
    assert (found == want).all()


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_removed_ids_are_gone(kind):
    index, ids, x = built(kind)
    gone = ids[:100]
    assert ann.remove(index, gone) == 100
    assert index.ntotal == len(ids) - 100
    _, found = ann.search(index, x[:100], 10, exact=Store(ids[100:], x[100:]) if kind != "flat" else None)
    assert not np.isin(found, gone).any()
    assert ann.remove(index, np.array([], np.int64)) == 0


def test_hnsw_cannot_remove_so_the_store_drops_its_tombstones():
    index, ids, x = built("hnsw")
    assert ann.remove(index, ids[:100]) == 0
    store = Store(ids, x)
    store.drop(ids[:100])
    _, found = ann.search(index, x[:100], 10, exact=store)
    assert not np.isin(found, ids[:100]).any()
    assert (found >= 0).all()  # the over-fetch fills the page despite the tombstones


def test_an_id_added_twice_to_hnsw_comes_back_once():
    index, ids, x = built("hnsw")
    ann.add(index, ids[:10], x[:10])  # re-tagged: hnsw keeps both entries
    for exact in (None, Store(ids, x)):
        _, found = ann.search(index, x[:10], 20, exact=exact)
        assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in found)


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_a_saved_index_searches_the_same_after_loading(kind, tmp_path):
    index, ids, x = built(kind)
    before = ann.search(index, x[:30], 10)
    faiss.write_index(index, str(tmp_path / "i.faiss"))
    loaded = faiss.read_index(str(tmp_path / "i.faiss"))
    ann.apply_search_params(loaded)
    assert ann.kind_of(loaded) == kind
    after = ann.search(loaded, x[:30], 10)
    assert (after[1] == before[1]).all()
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6)
    assert ann.index_memory_bytes(loaded) > 0


def test_short_results_are_padded_like_faiss():
    _, ids, x = built("flat")
    small = ann.build_index("flat", 32, 5)
    ann.add(small, ids[:5], x[:5])
    scores, found = ann.search(small, x[:2], 8)
    assert (found[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    empty = ann.build_index("flat", 32, 0)
    scores, found = ann.search(empty, x[:3], 4)
    assert found.shape == (3, 4) and (found == -1).all()


def test_training_on_too_few_vectors_names_the_fix():
    with pytest.raises(TagscopeError, match="--kind flat"):
        ann.build_index("ivfpq", 32, 10**6, clustered(100, 32))


def test_the_wrong_dimension_is_refused():
    index = ann.build_index("flat", 32, 10)
    with pytest.raises(ValueError, match="shape"):
        ann.add(index, np.arange(3), np.zeros((3, 16), np.float32))


def test_auto_resolves_by_size_and_a_forced_kind_stays():
    assert kinds.resolve_kind("auto", 10) == "flat"
    assert kinds.resolve_kind("ivfpq", 10) == "ivfpq"
    with pytest.raises(TagscopeError, match="use one of"):
        kinds.resolve_kind("annoy", 10)


def test_rebuild_is_asked_when_the_collection_outgrows_the_index():
    index, ids, x = built("ivfpq")
    assert kinds.rebuild_reason(ann.shape_of(index), len(ids), kind="ivfpq") is None
    assert "inverted lists" in kinds.rebuild_reason(ann.shape_of(index), 100 * len(ids), kind="ivfpq")
    assert "want a hnsw index" in kinds.rebuild_reason(ann.shape_of(index), kinds.FLAT_MAX, kind="auto")


def test_rebuild_is_asked_when_tombstones_pile_up():
    index, ids, _ = built("hnsw")
    assert kinds.rebuild_reason(ann.shape_of(index), len(ids), kind="hnsw") is None
    assert "tombstones" in kinds.rebuild_reason(ann.shape_of(index), len(ids) // 2, kind="hnsw")
