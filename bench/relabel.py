"""New labels from stored embeddings vs re-tagging the photos, measured side by side.

    python -m bench.relabel --n 10000 --labels 10 [--retag-n 500]

Builds a collection of N tagged images for the bundled synthetic model (generated photos,
embedded once through the real pipeline for the first --retag-n, the rest stored embeddings of
those repeated, so N can be large), then times ``labels add`` of --labels new labels (scored from
the embedding store, no photo read) and a re-tag of --retag-n photos, and prints the per-image
cost of each and their ratio. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from core.schema import TAGGED, Image, ModelVersion
from core.settings import load_settings
from indexer import store
from migrations import get_database
from mkt.synthetic import generate
from tagger.jobs.run import run_job
from tagger.relabel import score_new_labels
from tagger.vocabulary import seed_labels


def _grow(settings, n: int) -> None:
    """Register N - k more images that reuse the k real images' stored embeddings."""
    db = get_database(settings.db_url)
    with db.session() as s:
        mv = s.scalars(select(ModelVersion)).one()
        real = s.execute(select(Image.id)).scalars().all()
    ids, vectors = store.get(db, mv.id, real, mv.embed_dim)
    have = len(ids)
    with db.session() as s:
        for start in range(have, n, 5000):
            count = min(5000, n - start)
            rows = [{"path": f"/bench/{i}.png", "path_raw": f"/bench/{i}.png".encode(), "path_key": f"bench{i}",
                     "size_bytes": 1, "mtime": 0.0, "status": TAGGED, "model_version_id": mv.id}
                    for i in range(start, start + count)]
            s.execute(insert(Image), rows)
            new = s.execute(select(Image.id).where(Image.path_key.in_([r["path_key"] for r in rows]))).scalars().all()
            store.put(s, mv.id, new, vectors[np.arange(len(new)) % have])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relabel", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--labels", type=int, default=10)
    p.add_argument("--retag-n", type=int, default=500)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tagscope-bench-relabel-") as tmp:
        work = Path(tmp)
        generate(work / "photos", n=args.retag_n, seed=11)
        settings = load_settings(environ={}, home=str(work / "home"), model="synthetic", device="cpu")
        t0 = time.perf_counter()
        run_job(settings, [str(work / "photos")])
        tag_s = time.perf_counter() - t0
        _grow(settings, args.n)
        names = [f"new label {i}" for i in range(args.labels)]
        t0 = time.perf_counter()
        seed_labels(get_database(settings.db_url), names, source="user", state="pending")
        scored = score_new_labels(settings)
        add_s = time.perf_counter() - t0
    per_add, per_tag = add_s / scored, tag_s / args.retag_n
    print(f"labels add: {args.labels} labels for {scored} tagged images in {add_s:.2f} s ({per_add * 1e3:.3f} ms/img)")
    print(f"re-tag    : {args.retag_n} photos in {tag_s:.2f} s ({per_tag * 1e3:.3f} ms/img, 64 px synthetic photos)")
    print(f"ratio     : labels add is {per_tag / per_add:.0f}x faster per image than re-tagging")
    print(json.dumps({"n": scored, "labels": args.labels, "labels_add_s": round(add_s, 3),
                      "retag_ms_per_image": round(per_tag * 1e3, 3), "speedup": round(per_tag / per_add, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
