import numpy as np
import pytest

from core.errors import TagscopeError
from indexer.vector_index import VectorIndex


def unit(n, d=16, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_ranks_by_cosine_and_returns_sql_ids(tmp_path):
    idx = VectorIndex(tmp_path, "v1", 16)
    vecs = unit(50)
    idx.add(np.arange(1000, 1050), vecs)
    scores, ids = idx.search(vecs[7], 5)
    assert ids[0, 0] == 1007 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(scores[0]) <= 1e-6)


def test_add_is_an_upsert_and_remove_deletes(tmp_path):
    idx = VectorIndex(tmp_path, "v1", 16)
    vecs = unit(10)
    idx.add(np.arange(10), vecs)
    idx.add(np.array([3]), vecs[4:5])  # re-tagging image 3 replaces its vector
    assert len(idx) == 10
    _, ids = idx.search(vecs[4], 2)
    assert set(ids[0]) == {3, 4}
    assert idx.remove(np.array([3, 99])) == 1 and len(idx) == 9 and not idx.contains(3)


def test_saved_index_reloads_with_its_model_version(tmp_path):
    idx = VectorIndex(tmp_path, "v1", 16)
    idx.add(np.arange(5), unit(5))
    idx.save()
    again = VectorIndex.open(tmp_path, "v1", 16)
    assert len(again) == 5 and not again.is_stale()
    assert not list(tmp_path.glob("*.tmp"))  # written through temp files, renamed into place
    with pytest.raises(TagscopeError, match="tagscope index rebuild"):
        VectorIndex.open(tmp_path, "v1", 32)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_the_saved_metadata_describes_the_index_without_faiss(tmp_path, kind):
    """Light commands read the kind, count and inverted lists from the metadata: the same as the
    loaded index says."""
    from indexer import ann, files
    from indexer.kinds import IndexShape

    vecs = unit(400, d=32)
    idx = VectorIndex.build(tmp_path, "v1", 32, kind, 400, vecs if kind != "flat" else None)
    idx.add(np.arange(400), vecs)
    idx.save()
    assert files.saved_shape(tmp_path, "v1") == ann.shape_of(idx.index)
    assert files.saved_count(tmp_path, "v1") == len(idx) == 400
    assert files.saved_shape(tmp_path, "v2") == IndexShape("flat", 0) and files.saved_count(tmp_path, "v2") == 0
