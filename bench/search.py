"""Search index benchmark: build time, RAM per vector, single-query latency and recall@10.

    python -m bench.search --n 1000000 [--kind auto|flat|hnsw|ivfpq] [--queries 500] [--dim 512]

Data: clustered synthetic unit vectors standing in for CLIP image embeddings (see
:class:`Clusters`), generated in seeded chunks into a float16 memmap under a temp dir: that
file plays the durable embedding store, the source of truth the re-rank reads candidates from.
Queries are held-out points of the same distribution. Ground truth is brute-force inner
product over the same float16 vectors.

Build time = train + add, with FAISS on every core; latency = one query at a time with FAISS
on one thread (``faiss.omp_set_num_threads(1)``), as each web request thread searches.
``p50_ms``/``p95_ms`` time the full path (ANN, then the exact re-rank reading the candidates'
float16 rows from the memmap); ``*_no_rerank`` the ANN alone. The last line printed is one JSON
object. Results are recorded in docs/benchmarks.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from indexer import ann, kinds

CHUNK = 100_000
QUERY_STREAM = 2**31  # no stored chunk uses this stream
K = 10


class Clusters:
    """A mixture of anisotropic Gaussians on the sphere: ``centres`` random unit centres with
    log-normal weights (uneven cluster sizes, as in photo collections); each point is
    ``normalise(centre + noise)`` where the noise has total variance ``sigma**2`` spread over a
    1/i spectrum (effective dimension ~28, the order reported for CLIP embeddings) along axes
    that differ per cluster. ``sigma=0.75`` puts a point at cosine ~0.8 from its centre and
    ~0.64 from its cluster mates; points of different clusters are near-orthogonal."""

    def __init__(self, dim: int = 512, centres: int = 4096, sigma: float = 0.75, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 0])
        self.dim, self.seed = dim, seed
        self.centres = _unit(rng.standard_normal((centres, dim), dtype=np.float32))
        weights = rng.lognormal(0.0, 1.0, centres)
        self.cdf = np.cumsum(weights / weights.sum())
        spectrum = 1.0 / np.arange(1, dim + 1)
        spectrum *= sigma**2 / spectrum.sum()
        # per cluster, the spectrum on a different permutation of one random orthonormal basis
        self.scales = np.sqrt(np.stack([rng.permutation(spectrum) for _ in range(centres)])).astype(np.float32)
        self.basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)

    def sample(self, n: int, stream: int) -> np.ndarray:
        """``n`` points from random stream ``stream`` (the same stream always gives the same points)."""
        rng = np.random.default_rng([self.seed, 1, stream])
        labels = np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.cdf) - 1)
        noise = rng.standard_normal((n, self.dim), dtype=np.float32) * self.scales[labels]
        return _unit(self.centres[labels] + noise @ self.basis)

    def chunks(self, n: int) -> Iterator[np.ndarray]:
        """The ``n`` stored vectors, CHUNK at a time, rounded to float16 as the store keeps them."""
        for i, start in enumerate(range(0, n, CHUNK)):
            yield self.sample(min(CHUNK, n - start), stream=i).astype(np.float16)

    def queries(self, n: int) -> np.ndarray:
        """Held-out points of the same distribution (a stream no stored chunk uses)."""
        return self.sample(n, stream=QUERY_STREAM)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_store(clusters: Clusters, n: int, path: Path) -> np.memmap:
    """The stored embeddings: row ``id - 1`` of a float16 memmap holds SQL id ``id``."""
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, clusters.dim))
    start = 0
    for chunk in clusters.chunks(n):
        store[start:start + len(chunk)] = chunk
        start += len(chunk)
    store.flush()
    return store


def exact_top_k(store: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Brute-force top-``k`` ids (SQL ids: row + 1) of each query over the store, CHUNK rows at a time."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(store), CHUNK):
        s = queries @ np.asarray(store[start:start + CHUNK], dtype=np.float32).T
        s = np.concatenate([best_s, s], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + s.shape[1] - best_s.shape[1]) + 1,
                                                    (len(queries), s.shape[1] - best_s.shape[1]))], axis=1)
        top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean fraction of each row's true top-``k`` that ``found``'s first ``k`` contain."""
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def rss_anon_bytes() -> int:
    """Anonymous resident memory of this process (the index; not the memmapped store)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def served_rss_bytes(index: faiss.Index, path: Path) -> int:
    """RssAnon growth of a fresh process that reads the index file: the RAM the index takes where
    the searcher loads it (the building process also holds allocator slack from the adds)."""
    faiss.write_index(index, str(path))
    code = ("import sys, faiss\n"
            "def rss():\n"
            "    return next(int(x.split()[1]) * 1024 for x in open('/proc/self/status') if x.startswith('RssAnon:'))\n"
            "before = rss()\nindex = faiss.read_index(sys.argv[1])\nprint(rss() - before)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    path.unlink()
    return int(out.stdout.split()[-1])


def build(kind: str, store: np.ndarray, seed: int) -> tuple[faiss.Index, float, float]:
    """Train on a random sample of the store and add all of it; (index, train seconds, add seconds)."""
    n, dim = store.shape
    rng = np.random.default_rng([seed, 2])
    rows = np.sort(rng.choice(n, kinds.train_size(kind, n), replace=False))
    t0 = time.perf_counter()
    index = ann.build_index(kind, dim, n, np.asarray(store[rows], dtype=np.float32) if len(rows) else None)
    t1 = time.perf_counter()
    ann.add(index, np.arange(1, n + 1, dtype=np.int64), store)
    return index, t1 - t0, time.perf_counter() - t1


def timed_search(index: faiss.Index, queries: np.ndarray, exact: ann.ExactFn | None) -> tuple[np.ndarray, np.ndarray]:
    """Each query alone through :func:`ann.search`; (top-K ids, latencies in ms)."""
    found = np.zeros((len(queries), K), np.int64)
    ms = np.zeros(len(queries))
    for q in range(min(20, len(queries))):  # warm-up
        ann.search(index, queries[q], K, exact=exact)
    for q in range(len(queries)):
        t0 = time.perf_counter()
        _, found[q] = ann.search(index, queries[q], K, exact=exact)
        ms[q] = (time.perf_counter() - t0) * 1000
    return found, ms


def run(n: int, kind: str, n_queries: int, dim: int, work: Path, seed: int = 0) -> dict:
    """The whole benchmark for one size; returns the result record (printed as JSON by main)."""
    clusters = Clusters(dim=dim, seed=seed)
    t0 = time.perf_counter()
    store = write_store(clusters, n, work / "store.npy")
    queries = clusters.queries(n_queries)
    print(f"generated {n} x {dim} float16 vectors in {time.perf_counter() - t0:.1f} s", flush=True)
    kind = kinds.choose_kind(n) if kind == "auto" else kind
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    rss0 = rss_anon_bytes()
    index, train_s, add_s = build(kind, store, seed)
    rss_bytes = rss_anon_bytes() - rss0
    size = ann.index_memory_bytes(index)
    served = served_rss_bytes(index, work / "index.faiss")
    print(f"{kind} ({kinds.factory_string(kind, n, dim)}): train {train_s:.1f} s + add {add_s:.1f} s; bytes/vector: "
          f"{size / n:.1f} serialized, {served / n:.1f} RAM once loaded, {rss_bytes / n:.1f} RAM growth while "
          "building", flush=True)
    t0 = time.perf_counter()
    truth = exact_top_k(store, queries)
    print(f"exact top-{K} of {n_queries} queries by brute force in {time.perf_counter() - t0:.1f} s", flush=True)

    def exact(ids: np.ndarray) -> np.ndarray:
        return store[ids - 1]

    faiss.omp_set_num_threads(1)
    plain, plain_ms = timed_search(index, queries, None)
    reranked, rerank_ms = timed_search(index, queries, exact)
    result = {"n": n, "kind": kind, "factory": kinds.factory_string(kind, n, dim), "dim": dim,
              "search_params": kinds.SPECS[kind].search_params, "oversample": kinds.SPECS[kind].oversample,
              "queries": n_queries, "search_threads": 1, "build_threads": os.cpu_count(),
              "p50_ms": round(float(np.percentile(rerank_ms, 50)), 3),
              "p95_ms": round(float(np.percentile(rerank_ms, 95)), 3),
              "p50_ms_no_rerank": round(float(np.percentile(plain_ms, 50)), 3),
              "p95_ms_no_rerank": round(float(np.percentile(plain_ms, 95)), 3),
              "recall_at_10": round(recall_at(plain, truth), 4),
              "recall_at_10_reranked": round(recall_at(reranked, truth), 4),
              "bytes_per_vector": round(size / n, 1), "loaded_rss_bytes_per_vector": round(served / n, 1),
              "build_rss_bytes_per_vector": round(rss_bytes / n, 1),
              "train_s": round(train_s, 1), "add_s": round(add_s, 1), "build_s": round(train_s + add_s, 1)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="stored vectors")
    parser.add_argument("--kind", default="auto", choices=("auto", *kinds.KINDS))
    parser.add_argument("--queries", type=int, default=500, help="held-out queries (latency and recall)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tagscope-bench-search-"))
    try:
        result = run(args.n, args.kind, args.queries, args.dim, work, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"latency (1 thread, one query at a time, k={K}): p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms "
          f"with re-rank; p50 {result['p50_ms_no_rerank']} ms, p95 {result['p95_ms_no_rerank']} ms without")
    print(f"recall@{K}: {result['recall_at_10']} ANN alone, {result['recall_at_10_reranked']} re-ranked")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
