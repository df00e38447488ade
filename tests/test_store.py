"""Embeddings are data: the store in SQL is the truth, the FAISS index a cache rebuilt from it.

Every test runs on SQLite and on PostgreSQL, through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.schema import Job, ModelVersion
from indexer.vector_index import VectorIndex
from migrations import get_database

from . import ROOT
from .commands import run_cli, tagscope_env
from .databases import assert_consistent, stored, tagged_count
from .photos import photos_subset
from .waiting import wait_until


def index_contents(home: Path, url: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) in the saved index of the collection's model version, by id."""
    with get_database(url).session() as s:
        mv = s.scalars(select(ModelVersion)).one()
    index = VectorIndex.open(home / "index", mv.version, mv.embed_dim)
    import faiss

    ids = np.sort(faiss.vector_to_array(index.index.id_map).astype(np.int64))
    return ids, np.stack([index.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, 0))


def test_rebuild_from_the_store_equals_the_index_built_while_tagging(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 60)
    run_cli("tag", str(photos), home=home, **env)
    n = assert_consistent(url)
    built_ids, built = index_contents(home, url)
    store_ids, vectors = stored(url)
    assert n == 60 and np.array_equal(built_ids, store_ids) and np.array_equal(built, vectors)
    (home / "index").rename(home / "index-gone")  # the cache is lost; the store is not
    out = run_cli("index", "rebuild", home=home, **env)
    assert "60 vectors from the embedding store" in out.stdout
    ids, rebuilt = index_contents(home, url)
    assert np.array_equal(ids, built_ids) and np.array_equal(rebuilt, built)
    status = json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)
    assert [(r["size"], r["stored_embeddings"], r["fresh"]) for r in status] == [(60, 60, True)]
    hits = json.loads(run_cli("search", "red circle", "--json", home=home, **env).stdout)["results"]
    assert len(hits) == 20


@contextmanager
def tagging(photos: Path, home: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``tagscope tag`` in its own process group, slowed down (tiny batches, no decode workers);
    the whole group is killed on the way out if it still runs."""
    proc = subprocess.Popen([sys.executable, "-m", "tagscope", "tag", str(photos), "--batch-size", "2",
                             "--loader-workers", "0"], cwd=ROOT, env=tagscope_env(home, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


@pytest.mark.worker
@pytest.mark.slow
def test_a_kill_between_writes_leaves_sql_and_the_store_consistent(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 200)
    with tagging(photos, home, env) as proc:
        wait_until(lambda: tagged_count(url) >= 20)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-batch, mid-transaction: wherever it is
        proc.wait(timeout=30)
    partial = assert_consistent(url)
    assert 20 <= partial < 200
    run_cli("tag", str(photos), home=home, **env)  # resumes
    assert assert_consistent(url) == 200
    ids, vectors = index_contents(home, url)
    store_ids, store_vectors = stored(url)
    assert np.array_equal(ids, store_ids) and np.array_equal(vectors, store_vectors)


@pytest.mark.worker
@pytest.mark.slow
def test_images_are_searchable_while_the_job_runs(home_env, synthetic_photos, tmp_path):
    from core.settings import load_settings
    from indexer.search.searcher import Searcher

    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 300)
    with tagging(photos, home, env):
        wait_until(lambda: tagged_count(url) >= 10)
        searcher = Searcher(load_settings(environ={}, home=str(home), database_url=url, model="synthetic"))

        def hits_while_running():
            with get_database(url).session() as s:
                state = s.scalars(select(Job.state).order_by(Job.id.desc()).limit(1)).first()
            hits = searcher.search("red thing", 5)
            assert state == "running", "the job ended before its images were searchable"
            return hits

        hits = wait_until(hits_while_running, timeout=60, every=0.5)
        assert 0 < len(hits) <= 5


# hnsw over 300 images: the graph's 200 candidates hold the exact top 10. 4-bit PQ codes trained on
# 150 vectors are too coarse for that (bench.search measures them at 10^5-10^7); here the re-rank
# pool covers the set, which still checks the path: ANN candidates, stored vectors, exact order.
@pytest.mark.parametrize("kind, n", [("hnsw", 300), ("ivfpq", 150)])
def test_an_approximate_index_with_re_ranking_returns_the_exact_top_k(kind, n, home_env, synthetic_photos, tmp_path):
    from core.settings import load_settings
    from indexer.search.searcher import Searcher

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", n)), home=home, **env)
    settings = load_settings(environ={}, home=str(home), database_url=url, model="synthetic", loader_workers=0)
    queries = ["red circle", "blue star", "striped background", "green thing", "purple heart", "shiny cube"]
    exact = {q: Searcher(settings).search(q, 10) for q in queries}
    out = run_cli("index", "rebuild", "--kind", kind, home=home, **env)
    assert f"{n} vectors from the embedding store" in out.stdout
    status = json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)
    assert status[0]["kind"] == kind and status[0]["size"] == n
    approximate = Searcher(settings)
    assert not approximate.index().exact
    for q in queries:
        got = approximate.search(q, 10)
        assert [h.image_id for h in got] == [h.image_id for h in exact[q]], q
        assert [h.score for h in got] == pytest.approx([h.score for h in exact[q]], abs=1e-5), q


@pytest.mark.parametrize("sort_max", [10_000, 0])  # ORDER BY random(); random ids fetched by key
def test_a_training_sample_is_distinct_stored_vectors(sort_max, home_env, synthetic_photos, tmp_path):
    from indexer.store import sample

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 50)), home=home, **env)
    ids, vectors = stored(url)
    with get_database(url).session() as s:
        mv = s.scalars(select(ModelVersion)).one()
    db = get_database(url)
    got = sample(db, mv.id, mv.embed_dim, 20, seed=0, sort_max=sort_max)
    assert got.shape == (20, mv.embed_dim)
    rows = {v.tobytes(): i for i, v in zip(ids, vectors)}
    picked = [rows[v.tobytes()] for v in got]  # each is a stored vector ...
    assert len(set(picked)) == 20  # ... and none twice
    assert len(sample(db, mv.id, mv.embed_dim, 500, sort_max=sort_max)) == 50  # all when fewer
    seeds = {tuple(sorted(rows[v.tobytes()] for v in sample(db, mv.id, mv.embed_dim, 10, seed=k, sort_max=sort_max)))
             for k in range(5)}
    assert len(seeds) > 1  # random, not the first rows
