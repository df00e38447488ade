"""A bounded load test of `tagscope serve` on 127.0.0.1: 8 clients mixing searches and first
thumbnail loads (errors, must be 0, and p50/p95 per kind); then search throughput at 1, 8 and 32
clients, new and repeated texts, with the text tower run one text at a time and batched, in one
server process and in several.

    python -m bench.web_load [--n 300] [--clients 8] [--requests 800] [--queries 128]
                             [--model synthetic] [--model open_clip:ViT-B-32 ...] [--processes N]

Tags ``--n`` generated images with each ``--model`` (default: the bundled one) into a temporary
home and starts the real server (waitress, 8 request threads) on it. Mixed load, on the first
model's server: ``--clients`` threads send ``--requests`` requests in all: half
``GET /api/search`` with texts never asked before, half ``GET /thumb/ID`` for thumbnails never
made before (each made on its first request, several requests racing for some of them).
Search throughput, per model, each on a server with concurrent new texts sharing the text tower
(``indexer.search.text_batch``, the default) and one with each text encoded alone
(``TAGSCOPE_TEXT_BATCH=1``, as before the batcher), and a third batching in ``--processes``
processes (``TAGSCOPE_WEB_PROCESSES``, gunicorn; default: the cores): for 1, 8 and 32 clients, ``--queries``
searches (k = 20) with texts never asked before, then the same texts again (the query cache);
queries/s over the row's wall time, p50/p95 per request. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
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

BATCH_ENV = "TAGSCOPE_TEXT_BATCH"  # the text_batch setting: 1 encodes each text alone
PROCESSES_ENV = "TAGSCOPE_WEB_PROCESSES"  # the web_processes setting: server processes

CLIENTS = (1, 8, 32)


def modes(processes: int) -> dict[str, dict[str, str]]:
    """The servers compared, by their settings: one process encoding each new text alone, one
    process batching them (the default), ``processes`` processes batching them."""
    out = {"one_at_a_time": {BATCH_ENV: "1"}, "batched": {}}
    if processes > 1:
        out[f"batched_{processes}_processes"] = {PROCESSES_ENV: str(processes)}
    return out


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


def started(home: Path, env: dict[str, str]) -> tuple[object, int]:
    """`tagscope serve` on ``home`` with the settings ``env`` (TAGSCOPE_* variables) on top of ours."""
    saved = {name: os.environ.pop(name, None) for name in (BATCH_ENV, PROCESSES_ENV)}
    os.environ.update(env)
    try:
        port = free_port()
        return serve(home, port), port
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def stop(server) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(30)


def run_load(port: int, paths: list[str], clients: int) -> tuple[list[tuple[str, int, float]], float]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda p: fetch(port, p), paths))
    return results, time.perf_counter() - t0


def mixed_load(port: int, n: int, clients: int, requests: int) -> dict:
    """Issue 11's load: new searches and first thumbnail loads, interleaved."""
    rng = np.random.default_rng(0)
    half = requests // 2
    searches = [search_path(t) for t in texts(half, seed=3)]
    thumbs = [f"/thumb/{int(i)}" for i in rng.integers(1, n + 1, size=requests - half)]
    results, seconds = run_load(port, [p for pair in zip(searches, thumbs) for p in pair], clients)
    out = {"requests": len(results), "clients": clients, "seconds": round(seconds, 2),
           "errors": sum(status != 200 for _, status, _ in results)}
    for kind in ("search", "thumbnail"):
        ms = np.array([t for k, _, t in results if k == kind])
        out[kind] = {"n": len(ms), "p50_ms": round(float(np.median(ms)), 1),
                     "p95_ms": round(float(np.percentile(ms, 95)), 1)}
    print(f"{out['requests']} requests from {clients} clients in {seconds:.1f} s: {out['errors']} errors; "
          f"search p50 {out['search']['p50_ms']} / p95 {out['search']['p95_ms']} ms; first thumbnails p50 "
          f"{out['thumbnail']['p50_ms']} / p95 {out['thumbnail']['p95_ms']} ms", flush=True)
    return out


def search_path(text: str) -> str:
    return f"/api/search?{urllib.parse.urlencode({'q': text, 'k': 20})}"


def figures(results: list[tuple[str, int, float]], seconds: float) -> dict:
    ms = np.array([t for _, _, t in results])
    return {"qps": round(len(results) / seconds, 1), "p50_ms": round(float(np.median(ms)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "errors": sum(s != 200 for _, s, _ in results)}


def search_rows(port: int, queries: int, seed: int) -> dict:
    """New texts, then the same texts again, at each of ``CLIENTS``; warmed up first."""
    fresh = texts(queries * (len(CLIENTS) + 1), seed=seed)  # distinct: each ends in its own counter
    run_load(port, [search_path(f"warm up {t}") for t in fresh[:16]], 8)
    out = {}
    for n, clients in enumerate(CLIENTS, start=1):
        paths = [search_path(t) for t in fresh[n * queries:(n + 1) * queries]]
        out[f"new_{clients}"] = figures(*run_load(port, paths, clients))
        out[f"repeated_{clients}"] = figures(*run_load(port, paths, clients))
    return out


def print_rows(model: str, rows: dict[str, dict]) -> None:
    print(f"\n{model}: searches (k = 20), queries/s  p50 / p95 ms")
    print(f"{'texts':9s} {'clients':>7s}   " + "   ".join(f"{mode[:26]:>26s}" for mode in rows))
    for key in next(iter(rows.values())):
        kind, clients = key.split("_")
        cells = [f"{r[key]['qps']:8.1f} q/s {r[key]['p50_ms']:6.1f} / {r[key]['p95_ms']:6.1f}" for r in rows.values()]
        print(f"{kind:9s} {clients:>7s}   " + "   ".join(f"{c:>26s}" for c in cells), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--queries", type=int, default=128, help="searches per throughput row")
    parser.add_argument("--model", action="append", help="repeatable; default: synthetic")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                        help="server processes of the third server compared (default: this machine's cores; "
                             "1: compare only the first two)")
    args = parser.parse_args(argv)
    from mkt.synthetic.datasets import generate

    models = args.model or ["synthetic"]
    work = Path(tempfile.mkdtemp(prefix="tagscope-load-"))
    generate(work / "photos", args.n, seed=7)
    out: dict = {"n": args.n, "queries": args.queries, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
                 "search": {}}
    for m, model in enumerate(models):
        home = work / f"home-{m}"
        cli(home, "tag", str(work / "photos"), "--model", model)
        rows = {}
        for mode, env in modes(args.processes).items():
            server, port = started(home, env)
            try:
                if m == 0 and mode == "batched":
                    out["mixed"] = mixed_load(port, args.n, args.clients, args.requests)
                rows[mode] = search_rows(port, args.queries, seed=11 + m)
            finally:
                stop(server)
        out["search"][model] = rows
        print_rows(model, rows)
    out["load_after"] = os.getloadavg()[0]
    errors = out["mixed"]["errors"] + sum(row["errors"] for rows in out["search"].values()
                                          for mode in rows.values() for row in mode.values())
    print(json.dumps(out))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
