"""Per-image bookkeeping of a tagging job, on files that never reach the model.

    python -m bench.bookkeeping [--n 20000] [--database-url URL]

Everything a job does besides decoding and the model: register the files (scan, one row each),
split the job into tasks, read each file, record its outcome in bulk, count progress, bring the
index up to date. Measured on files that skip the model (here: files that fail at once, as empty
`.jpg` files do), so nothing else is in the figure; then a second run over the same, unchanged
files (a nightly re-run: the scan finds nothing to do). Issue 10's target: <= 0.1 ms an image,
so that bookkeeping never bounds a GPU pipeline (10,000 img/s).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temporary home")
    parser.add_argument("--workers", type=int, default=2, help="decode workers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from core.settings import load_settings
    from mkt.factory import get_model
    from tagger.jobs.run import run_job

    work = Path(tempfile.mkdtemp(prefix="tagscope-bookkeeping-"))
    photos = work / "photos"
    for i in range(args.n):
        sub = photos / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"IMG_{i:06d}.jpg").touch()
    settings = load_settings(environ={}, home=str(work / "home"), model="synthetic", device="cpu",
                             database_url=args.database_url or None, loader_workers=args.workers)
    get_model("synthetic", "cpu")  # outside the timings
    out = {"n": args.n, "database": settings.db_url.split(":")[0], "workers": args.workers}
    for run in ("first_run", "second_run"):
        t0 = time.perf_counter()
        summary = run_job(settings, [str(photos)])
        seconds = time.perf_counter() - t0
        out[f"{run}_ms_per_image"] = round(seconds * 1000 / args.n, 4)
        print(f"{run.replace('_', ' ')}: {seconds:.2f} s for {args.n} files, "
              f"{seconds * 1000 / args.n:.3f} ms an image  ({summary.splitlines()[0][:90]})")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
