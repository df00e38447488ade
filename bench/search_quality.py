"""Search with the model's own score: unseen-label search quality with and without re-ranking.

    python -m bench.search_quality --model CLIP_SPEC --model MKT_SPEC [--n 1000] [--out docs/search-quality.md]

For each model: tag a held-out synthetic collection (the results table's evaluation seed), then
search every unseen compound label of the table's split over the whole collection, (a) by the
index alone (global embedding cosine, what FAISS ranks by) and (b) re-ranked by the model's own
score from the stored embeddings (for MKT bundles the two-stream score the tags store). Reports
search mAP and precision@10 per model and mode (labels are the ground truth of labels.jsonl),
the median query time of each mode, and the stored bytes per image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.schema import Embedding, Image
from core.settings import load_settings
from indexer.search.searcher import Searcher
from migrations import get_database
from mkt.synthetic import EVAL_SEED, generate, synthetic_split
from mkt.training.metrics import mean_average_precision
from tagger.jobs.run import run_job


def _truth(photos: Path) -> dict[str, set[str]]:
    rows = [json.loads(line) for line in (photos / "labels.jsonl").read_text().splitlines()]
    return {str((photos / r["file"]).resolve()): set(r["labels"]) for r in rows}


def _rankings(searcher: Searcher, label: str, n: int, mode: str) -> tuple[list[int], float]:
    """Image ids best first over the whole collection, and the query time in ms."""
    t0 = time.perf_counter()
    if mode == "rerank":
        ids = [h.image_id for h in searcher.search(label, n)]
    else:
        query = searcher.embed_query(label)
        _, found = searcher.index().search(query.numpy(), n)
        ids = [int(i) for i in found[0] if i >= 0]
    return ids, (time.perf_counter() - t0) * 1000


def evaluate(spec: str, photos: Path, home: Path, unseen: list[str]) -> dict[str, dict[str, float]]:
    settings = load_settings(environ={}, home=str(home), model=spec, device="cpu", loader_workers=0)
    run_job(settings, [str(photos)])
    searcher = Searcher(settings)
    db = get_database(settings.db_url)
    with db.session() as s:
        paths = dict(s.execute(select(Image.id, Image.path)).all())
        stored = s.execute(select(Embedding.vector, Embedding.patches).limit(1)).one()
    truth = _truth(photos)
    n = len(paths)
    out = {}
    for mode in ("index", "rerank"):
        scores, labels, p10, times = [], [], [], []
        for label in unseen:
            ids, ms = _rankings(searcher, label, n, mode)
            times.append(ms)
            rank = {image_id: len(ids) - r for r, image_id in enumerate(ids)}
            scores.append([rank.get(i, 0) for i in sorted(paths)])
            labels.append([1 if label in truth[paths[i]] else -1 for i in sorted(paths)])
            p10.append(np.mean([label in truth[paths[i]] for i in ids[:10]]))
        out[mode] = {"map": mean_average_precision(np.array(scores).T, np.array(labels).T),
                     "p@10": float(np.mean(p10)), "median_ms": statistics.median(times)}
    out["bytes_per_image"] = {"vector": len(stored[0]), "patches": len(stored[1] or b"")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search_quality", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, help="model spec (repeat)")
    p.add_argument("--n", type=int, default=1000, help="held-out images")
    p.add_argument("--unseen", type=int, default=20)
    p.add_argument("--out", default="", help="also write the table (Markdown) here")
    args = p.parse_args(argv)
    unseen = synthetic_split(args.unseen, seed=0).unseen
    results = {}
    with tempfile.TemporaryDirectory(prefix="tagscope-search-quality-") as tmp:
        photos = generate(Path(tmp) / "photos", n=args.n, seed=EVAL_SEED)
        for i, spec in enumerate(args.model):
            results[spec] = evaluate(spec, photos, Path(tmp) / f"home{i}", unseen)
    lines = ["| model | ranking | unseen-label search mAP | P@10 | median query ms |", "|---|---|---|---|---|"]
    for spec, r in results.items():
        for mode, name in (("index", "index (global cosine)"), ("rerank", "re-ranked by the model's score")):
            lines.append(f"| `{spec}` | {name} | {100 * r[mode]['map']:.1f} | {100 * r[mode]['p@10']:.1f} | "
                         f"{r[mode]['median_ms']:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
