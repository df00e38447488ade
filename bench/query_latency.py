"""Search latency over HTTP, new and repeated texts, 1 and 8 concurrent clients; and the time
of `tagscope search` from a shell with and without a running server.

    python -m bench.query_latency [--model open_clip:ViT-B-32] [--n 200] [--queries 100]

Tags ``--n`` generated images with the model into a temporary home, starts `tagscope serve`
on it, then times ``GET /api/search`` (k = 20) from clients on 127.0.0.1: "new" texts were
never asked before (each is encoded by the text tower), "repeated" texts were (the server's
query-embedding cache). Then `tagscope search` as a user types it, with the bundled model, with
the server up (it answers) and down (the command searches in-process). Issue 10's targets:
new p50 <= 30 ms and repeated p50 <= 5 ms with ViT-B-32 and one client; the shell <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

WORDS = ["red", "blue", "green", "striped", "dotted", "small", "large", "shiny", "wooden", "bright", "dark",
         "old", "round", "square", "soft", "metal", "paper", "glass", "tiny", "huge"]
THINGS = ["circle", "star", "cat", "car", "tree", "house", "cup", "boat", "flower", "chair", "lamp", "bird"]


def texts(n: int, seed: int) -> list[str]:
    """``n`` distinct query texts (two words and a thing, a counter where they run out)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        a, b = rng.choice(WORDS, 2, replace=False)
        text = f"{a} {b} {rng.choice(THINGS)} {len(out)}"
        out.append(text)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(home: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "TAGSCOPE_HOME": str(home), "TAGSCOPE_LOADER_WORKERS": "0"}
    return subprocess.run([sys.executable, "-m", "tagscope", *args], env=env, capture_output=True, text=True,
                          check=True, **kwargs)


def serve(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TAGSCOPE_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "tagscope", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("tagscope serve did not start")


def get(port: int, text: str) -> float:
    t0 = time.perf_counter()
    q = urllib.parse.urlencode({"q": text, "k": 20})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?{q}", timeout=30) as r:
        r.read()
    return (time.perf_counter() - t0) * 1000


def latencies(port: int, queries: list[str], clients: int) -> dict[str, float]:
    with ThreadPoolExecutor(clients) as pool:
        ms = np.array(list(pool.map(lambda t: get(port, t), queries)))
    return {"p50_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def shell_search(home: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        cli(home, "search", "red circle", "-k", "5")
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)), 2)


def http_figures(model: str, n: int, queries: int, work: Path) -> dict:
    from mkt.synthetic.datasets import generate

    generate(work / "photos", n, seed=5)
    home = work / "home-http"
    cli(home, "tag", str(work / "photos"), "--model", model)
    port = free_port()
    server = serve(home, port)
    try:
        get(port, "warm up")
        out = {}
        for clients in (1, 8):
            fresh = texts(queries, seed=clients)
            out[f"new_text_{clients}_clients"] = latencies(port, fresh, clients)
            out[f"repeated_text_{clients}_clients"] = latencies(port, fresh, clients)  # asked just before
        return out
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def shell_figures(work: Path) -> dict:
    from mkt.synthetic.datasets import generate

    generate(work / "small", 60, seed=6)
    home = work / "home-shell"
    cli(home, "tag", str(work / "small"), "--model", "synthetic")
    down = shell_search(home)
    port = free_port()
    server = serve(home, port)
    try:
        up = shell_search(home)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return {"shell_search_s_server_up": up, "shell_search_s_in_process": down}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="open_clip:ViT-B-32")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tagscope-latency-"))
    out = {"model": args.model, "n": args.n, **http_figures(args.model, args.n, args.queries, work),
           **shell_figures(work)}
    for key, value in out.items():
        print(f"{key:34s} {value}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
