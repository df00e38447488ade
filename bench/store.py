"""Where to keep embeddings: a SQL column vs append-only shard files, measured side by side.

    python -m bench.store --n 100000 --dim 512 [--postgres postgresql://postgres@127.0.0.1/postgres]

Writes N float16 vectors in batches (as tagging does: one transaction per batch), then reads
them all back (as an index rebuild does) and a random 1% by id (as re-ranking and label scoring
do). The shard file is appended and fsynced per batch, with its bookkeeping row (id -> offset) in
SQL in the same batch; the column variant writes the vector bytes in the row itself. Prints
rows/s and bytes on disk for each, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, create_engine, insert, select, text


def _tables(meta: MetaData) -> tuple[Table, Table]:
    column = Table("emb_column", meta, Column("image_id", Integer, primary_key=True), Column("vector", LargeBinary))
    shard = Table("emb_shard", meta, Column("image_id", Integer, primary_key=True), Column("row", Integer))
    return column, shard


def _engine(url: str):
    if url.startswith("postgresql"):
        name = f"tagscope_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        return create_engine(url.rsplit("/", 1)[0] + "/" + name), (admin, name)
    return create_engine(url), None


def run(url: str, n: int, dim: int, batch: int, folder: Path) -> dict[str, float]:
    engine, cleanup = _engine(url)
    meta = MetaData()
    column, shard = _tables(meta)
    meta.create_all(engine)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float16)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        rows = [{"image_id": i, "vector": vectors[i].tobytes()} for i in range(start, min(n, start + batch))]
        with engine.begin() as c:
            c.execute(insert(column), rows)
    out["column_write_rows_s"] = n / (time.perf_counter() - t0)
    path = folder / "shard.f16"
    t0 = time.perf_counter()
    with open(path, "ab") as fh:
        for start in range(0, n, batch):
            chunk = vectors[start:start + batch]
            fh.write(chunk.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
            with engine.begin() as c:
                c.execute(insert(shard), [{"image_id": start + j, "row": start + j} for j in range(len(chunk))])
    out["shard_write_rows_s"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with engine.connect() as c:
        got = np.frombuffer(b"".join(v for (v,) in c.execute(select(column.c.vector).order_by(column.c.image_id))),
                            np.float16).reshape(n, dim)
    out["column_read_all_rows_s"] = n / (time.perf_counter() - t0)
    assert np.array_equal(got, vectors)
    t0 = time.perf_counter()
    with engine.connect() as c:
        rows = np.array(c.execute(select(shard.c.row).order_by(shard.c.image_id)).scalars().all())
    got = np.fromfile(path, np.float16).reshape(-1, dim)[rows]
    out["shard_read_all_rows_s"] = n / (time.perf_counter() - t0)
    assert np.array_equal(got, vectors)
    some = rng.choice(n, size=max(1, n // 100), replace=False).tolist()
    t0 = time.perf_counter()
    with engine.connect() as c:
        c.execute(select(column.c.vector).where(column.c.image_id.in_(some))).all()
    out["column_read_1pct_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    with engine.connect() as c:
        rows = c.execute(select(shard.c.row).where(shard.c.image_id.in_(some))).scalars().all()
    mm = np.memmap(path, np.float16, mode="r").reshape(-1, dim)
    _ = np.asarray(mm[np.sort(rows)])
    out["shard_read_1pct_ms"] = (time.perf_counter() - t0) * 1000
    out["shard_file_bytes_per_vector"] = path.stat().st_size / n
    if url.startswith("sqlite"):
        out["sqlite_file_bytes_per_vector"] = Path(url.removeprefix("sqlite:///")).stat().st_size / n
    engine.dispose()
    if cleanup:
        admin, name = cleanup
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
    return {k: round(v, 1) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--batch", type=int, default=256, help="vectors per transaction (a tagging batch)")
    p.add_argument("--postgres", default="", help="also measure on this PostgreSQL server (admin URL)")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="tagscope-bench-store-") as tmp:
        folder = Path(tmp)
        urls = {"sqlite": f"sqlite:///{folder / 'bench.sqlite'}"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        for name, url in urls.items():
            results[name] = run(url, args.n, args.dim, args.batch, folder / name if False else folder)
            (folder / "shard.f16").unlink()
            for key, value in results[name].items():
                print(f"{name:10s} {key:32s} {value:>12,.1f}")
    print(json.dumps({"n": args.n, "dim": args.dim, "batch": args.batch, **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
