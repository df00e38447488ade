"""`tagscope search` asks the `tagscope serve` running on the same home, gets what an in-process
search gives, and searches in-process when no server (or a stale record of one) is there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from . import ROOT
from .commands import run_cli, tagscope_env
from .databases import copy_home
from .servers import start_server, stop_process
from .waiting import wait_until


def search_json(home, *args: str) -> list[dict]:
    return json.loads(run_cli("search", *args, "--json", home=home).stdout)["results"]


@pytest.mark.worker
@pytest.mark.slow
def test_search_asks_the_running_server_and_falls_back_when_it_is_gone(tagged_home, tmp_path):
    home = tmp_path / "home"
    copy_home(tagged_home, home)
    log = tmp_path / "serve.log"
    proc, url = start_server(home, log=log)
    try:
        record = json.loads((home / "server.json").read_text())
        assert record["url"] == url and record["pid"] == proc.pid
        served = search_json(home, "red circle", "-k", "7")
        assert "GET /api/search?q=red+circle&k=7" in log.read_text()  # the server answered it
        assert "--model" not in log.read_text()
        refused = run_cli("search", "red circle", "-k", "0", home=home, check=False)  # refused before it asks
        assert refused.returncode == 2 and refused.stderr.startswith("error: k must be between 1"), refused.stderr
        assert log.read_text().count("GET /api/search") == 1
        # The server's own model named: it answers; another model: this process searches itself.
        search_json(home, "red circle", "-k", "7", "--model", "synthetic")
        filtered = search_json(home, "red circle", "-k", "7", "--media", "photo", "--taken", "2020..2099")
        assert "&taken=2020..2099&media=photo" in log.read_text()  # filters go to the server by their names
        assert [h["image_id"] for h in filtered] == [h["image_id"] for h in served]  # every file: a dated photo
        requests = log.read_text().count("GET /api/search")
        assert requests == 3
        run_cli("search", "red circle", "--model", "open_clip:tagscope-tiny", home=home, check=False)
        assert log.read_text().count("GET /api/search") == requests
    finally:
        stop_process(proc)
    assert not (home / "server.json").exists()  # withdrawn on SIGTERM
    in_process = search_json(home, "red circle", "-k", "7")
    assert [h["image_id"] for h in in_process] == [h["image_id"] for h in served]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(in_process, served))
    # A record left by a killed server (dead pid, closed port) is ignored.
    (home / "server.json").write_text(json.dumps({**record, "pid": proc.pid}))
    assert [h["image_id"] for h in search_json(home, "red circle", "-k", "7")] == [h["image_id"] for h in served]


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    out = set()
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(stat))
    return out


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_in_several_processes(tagged_home, tmp_path):
    """`tagscope serve --processes 2`: two gunicorn workers on one port, announced under the parent;
    a killed worker is replaced while the other answers; SIGTERM stops them all; a wrong model
    stops the server with its one-line error."""
    home = tmp_path / "home"
    copy_home(tagged_home, home)
    proc, base = start_server(home, "--processes", "2")
    try:
        workers = wait_until(lambda: len(children(proc.pid)) == 2 and children(proc.pid), what="two workers")
        record = json.loads(wait_until(lambda: (home / "server.json").exists() and (home / "server.json").read_text(),
                                     what="server.json"))
        assert record["pid"] == proc.pid and record["url"] == base
        served = search_json(home, "red circle", "-k", "7")  # the CLI asks the server
        assert "GET /api/search?q=red+circle&k=7" in (home / "serve.log").read_text()

        def ask(n: int) -> int:
            url = f"{base}/api/search?q=red+circle+{n}&k=5"
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.status

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(32))) == {200}
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_until(lambda: len(children(proc.pid) - {victim}) == 2 and children(proc.pid) - {victim},
                              what="the killed worker replaced")
        assert victim not in replaced and len(replaced & workers) == 1
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(32, 48))) == {200}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not children(proc.pid) and not (home / "server.json").exists()
    in_process = search_json(home, "red circle", "-k", "7")
    assert [h["image_id"] for h in in_process] == [h["image_id"] for h in served]

    wrong = subprocess.run([sys.executable, "-m", "tagscope", "serve", "--port", "0", "--processes", "2",
                            "--model", "open_clip:tagscope-tiny"], cwd=ROOT, env=tagscope_env(home),
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0
    assert "error: the collection is tagged with synthetic, not open_clip:tagscope-tiny" in wrong.stderr, wrong.stderr
