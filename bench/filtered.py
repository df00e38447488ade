"""Filtered text queries at library scale: p50 latency of a new text with a filter keeping 50%,
5% and 0.1% of the photos, against the same texts unfiltered, in one run.

    python -m bench.filtered --n 100000 [--queries 30] [--database-url postgresql://...]

Builds a library of N tagged photos for the bundled synthetic model: --real generated photos
tagged through the real pipeline, then N - real more rows whose stored embeddings are those
photos' with a little noise (so every vector is distinct and texts rank them as they would the
photos), each with a media row: camera "Canon" on 50% of them, the place Paris on 5%, taken in
2001 on 0.1%. Times ``Searcher.find`` (in process, the path the server runs) for new texts (each
encoded by the text tower once) with each filter, and checks that every filtered query returns k
results that all pass the filter. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import delete, insert, select

from core.schema import TAGGED, Image, Media, ModelVersion
from core.settings import Settings, load_settings
from indexer import store
from indexer.sync import sync_index
from migrations import get_database, upgrade
from mkt.synthetic import generate
from tagger.jobs.run import run_job

FILTERS = {"50%": {"camera": "canon"}, "5%": {"place": "Paris"}, "0.1%": {"taken": "2001"}}


def share(i: int) -> dict:
    """The media row of generated photo ``i``: which filters it passes."""
    return {"camera_make": "Canon" if i % 2 == 0 else "Nikon", "camera_model": "EOS R6" if i % 2 == 0 else "Z6",
            "city": "Paris" if i % 20 == 1 else "Lyon", "country": "France", "country_code": "FR",
            "taken": datetime(2001, 6, 1) if i % 1000 == 3 else datetime(2020, 1 + i % 12, 1 + i % 28),
            "kind": "photo", "taken_source": "exif"}


def grow_library(settings: Settings, n: int, real: int, seed: int = 0, batch: int = 5000) -> int:
    """Tag ``real`` generated photos into ``settings``' home, then grow the collection to ``n``
    tagged photos (stored embeddings of the real ones plus noise; media rows as :func:`share`)."""
    photos = settings.home / "photos"
    generate(photos, n=real, seed=seed + 11)
    run_job(settings, [str(photos)])
    db = get_database(settings.db_url)
    with db.session() as s:
        mv = s.scalars(select(ModelVersion)).one()
        ids = s.execute(select(Image.id).order_by(Image.id)).scalars().all()
        s.execute(delete(Media).where(Media.image_id.in_(ids)))  # their files' own dates and places
        s.execute(insert(Media), [{"image_id": i, **share(n_)} for n_, i in enumerate(ids)])
    found, vectors = store.get(db, mv.id, ids, mv.embed_dim)
    rng = np.random.default_rng(seed)
    for start in range(len(found), n, batch):
        count = min(batch, n - start)
        rows = [{"path": f"/library/{i // 1000:04d}/{i}.jpg", "path_raw": f"/library/{i // 1000:04d}/{i}.jpg".encode(),
                 "path_key": f"gen{i}", "size_bytes": 1, "mtime": 0.0, "status": TAGGED, "model_version_id": mv.id}
                for i in range(start, start + count)]
        noisy = vectors[np.arange(start, start + count) % len(found)] + rng.normal(0, 0.02, (count, mv.embed_dim))
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        with db.session() as s:
            s.execute(insert(Image), rows)
            new = s.execute(select(Image.id).where(Image.path_key.in_([r["path_key"] for r in rows]))
                            .order_by(Image.id)).scalars().all()
            s.execute(insert(Media), [{"image_id": i, **share(start + k)} for k, i in enumerate(new)])
            store.put(s, mv.id, new, noisy.astype(np.float32))
    sync_index(settings, db, store.find_version(db, mv.version))  # the index follows the store
    if db.engine.dialect.name == "postgresql":  # fresh statistics, as autovacuum keeps them on a live database
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return n


def texts(n: int, seed: int) -> list[str]:
    from bench.query_latency import texts as new_texts

    return new_texts(n, seed)


def run(settings: Settings, queries: int, k: int) -> dict:
    from indexer.search.filters import Filters
    from indexer.search.searcher import Searcher

    searcher = Searcher(settings)
    searcher.find("warm up", k=k)  # loads the model and the index
    out: dict[str, float] = {}
    for n, (name, values) in enumerate([("none", {}), *FILTERS.items()]):
        filters = Filters.from_args(values)
        times = []
        for text in texts(queries, seed=100 + n):
            t0 = time.perf_counter()
            results = searcher.find(text, k=k, filters=filters)
            times.append(time.perf_counter() - t0)
            if values and len(results.hits) != k:
                raise SystemExit(f"filter {name}: {len(results.hits)} results for k={k}")
        out[f"p50_ms_{name}"] = round(1e3 * float(np.median(times)), 1)
        out[f"p95_ms_{name}"] = round(1e3 * float(np.percentile(times, 95)), 1)
        print(f"filter {name:>5}: p50 {out[f'p50_ms_{name}']:7.1f} ms  p95 {out[f'p95_ms_{name}']:7.1f} ms "
              f"({queries} new texts, k={k})", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.filtered", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--real", type=int, default=300)
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--database-url", help="default: SQLite in a temporary home")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tagscope-bench-filtered-") as tmp:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(environ={}, home=str(Path(tmp) / "home"), model="synthetic", device="cpu",
                                 **overrides)
        if args.database_url:
            upgrade(get_database(args.database_url, migrate=False))  # `tagscope db upgrade`
        t0 = time.perf_counter()
        grow_library(settings, args.n, args.real)
        print(f"library: {args.n} tagged photos in {time.perf_counter() - t0:.1f} s", flush=True)
        result = run(settings, args.queries, args.k)
    print(json.dumps({"n": args.n, "k": args.k, "queries": args.queries,
                      "database": "postgresql" if args.database_url else "sqlite", **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
