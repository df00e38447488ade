"""A bounded load test of `tagscope serve` on 127.0.0.1: 8 clients mixing searches and first
thumbnail loads; prints errors (must be 0) and p50/p95 per kind.

    python -m bench.web_load [--n 300] [--clients 8] [--requests 800]

Tags ``--n`` generated images with the bundled model into a temporary home, starts the real
server (waitress), then ``--clients`` threads send ``--requests`` requests in all: half
``GET /api/search`` with texts never asked before, half ``GET /thumb/ID`` for thumbnails never
made before (each made on its first request, several requests racing for some of them).
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.query_latency import cli, free_port, serve, texts


def fetch(port: int, path: str) -> tuple[str, int, float]:
    kind = "search" if path.startswith("/api/search") else "thumbnail"
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0  # connection refused or reset: an error too
    return kind, status, (time.perf_counter() - t0) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=800)
    args = parser.parse_args(argv)
    from mkt.synthetic.datasets import generate

    work = Path(tempfile.mkdtemp(prefix="tagscope-load-"))
    generate(work / "photos", args.n, seed=7)
    home = work / "home"
    cli(home, "tag", str(work / "photos"), "--model", "synthetic")
    rng = np.random.default_rng(0)
    half = args.requests // 2
    searches = [f"/api/search?{urllib.parse.urlencode({'q': t, 'k': 20})}" for t in texts(half, seed=3)]
    thumbs = [f"/thumb/{int(i)}" for i in rng.integers(1, args.n + 1, size=args.requests - half)]
    mixed = [p for pair in zip(searches, thumbs) for p in pair]
    port = free_port()
    server = serve(home, port)
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda p: fetch(port, p), mixed))
        seconds = time.perf_counter() - t0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    out = {"requests": len(results), "clients": args.clients, "seconds": round(seconds, 2),
           "errors": sum(status != 200 for _, status, _ in results)}
    for kind in ("search", "thumbnail"):
        ms = np.array([t for k, _, t in results if k == kind])
        out[kind] = {"n": len(ms), "p50_ms": round(float(np.median(ms)), 1),
                     "p95_ms": round(float(np.percentile(ms, 95)), 1)}
    print(f"{out['requests']} requests from {args.clients} clients in {seconds:.1f} s: {out['errors']} errors; "
          f"search p50 {out['search']['p50_ms']} / p95 {out['search']['p95_ms']} ms; first thumbnails p50 "
          f"{out['thumbnail']['p50_ms']} / p95 {out['thumbnail']['p95_ms']} ms")
    print(json.dumps(out))
    return 0 if out["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
