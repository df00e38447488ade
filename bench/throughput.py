"""Tagging and search throughput, measured side by side in one run.

    python -m bench.throughput [--n 512] [--model synthetic] [--device cpu] [--photo-size 1600]

Prints images/s for: unbatched inference (batch 1, decode in the main process) vs the
pipeline's batched inference (batch 64) with 0 and 2 DataLoader decode workers, and the
ratios between them; then text-query latency against the FAISS index. Results are recorded
in docs/benchmarks.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np


def _tag_once(photos: Path, home: Path, model: str, device: str, batch_size: int, workers: int) -> float:
    from core.settings import load_settings
    from tagger.jobs.run import run_job

    settings = load_settings(environ={}, home=str(home), model=model, device=device, batch_size=batch_size,
                             loader_workers=workers, task_size=100_000)
    t0 = time.perf_counter()
    run_job(settings, [str(photos)])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512, help="images in the generated collection")
    parser.add_argument("--model", default="synthetic")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--photo-size", type=int, default=0,
                        help="re-save the images as JPEGs of this size (decoding cost of real photos)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from mkt.factory import get_model
    from mkt.synthetic import generate

    get_model(args.model, args.device)  # load once, outside the timings
    work = Path(tempfile.mkdtemp(prefix="tagscope-bench-"))
    photos = work / "photos"
    generate(photos, n=args.n, seed=123)
    if args.photo_size:
        from PIL import Image

        for png in sorted(photos.glob("*.png")):
            with Image.open(png) as im:
                im.convert("RGB").resize((args.photo_size, args.photo_size * 3 // 4)).save(
                    png.with_suffix(".jpg"), quality=90)
            png.unlink()
    runs = {
        "unbatched (batch 1, 0 workers)": (1, 0),
        "batched (batch 64, 0 workers)": (64, 0),
        "batched (batch 64, 2 workers)": (64, 2),
    }
    rates = {}
    for i, (name, (bs, workers)) in enumerate(runs.items()):
        seconds = _tag_once(photos, work / f"home{i}", args.model, args.device, bs, workers)
        rates[name] = args.n / seconds
        print(f"{name:34s} {rates[name]:8.1f} img/s  ({seconds:.2f} s for {args.n})")
    base = rates["unbatched (batch 1, 0 workers)"]
    for name, rate in rates.items():
        print(f"ratio {name:28s} {rate / base:6.2f}x unbatched")

    from core.settings import load_settings
    from indexer.search.searcher import Searcher

    settings = load_settings(environ={}, home=str(work / "home2"), model=args.model, device=args.device)
    searcher = Searcher(settings)
    searcher.search("red circle", 20)  # warm: loads the index
    words = ["red circle", "blue star", "striped background", "green thing", "purple heart"]
    latencies = []
    for q in range(args.queries):
        t0 = time.perf_counter()
        searcher.search(words[q % len(words)], 20)
        latencies.append(time.perf_counter() - t0)
    lat = np.array(latencies) * 1000
    print(f"search k=20 over {args.n} images: median {np.median(lat):.1f} ms, p95 {np.percentile(lat, 95):.1f} ms")
    print(json.dumps({"n": args.n, "model": args.model, "device": args.device, "rates_img_s": rates,
                      "search_ms_median": float(np.median(lat))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
