"""`tagscope search` asks the `tagscope serve` running on the same home, gets what an in-process
search gives, and searches in-process when no server (or a stale record of one) is there."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from .conftest import run_cli, start_server


def search_json(home, *args: str) -> list[dict]:
    return json.loads(run_cli("search", *args, "--json", home=home).stdout)["results"]


@pytest.mark.worker
@pytest.mark.slow
def test_search_asks_the_running_server_and_falls_back_when_it_is_gone(tagged_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(tagged_home, home, ignore=shutil.ignore_patterns("server.json", "*.log"))
    log = tmp_path / "serve.log"
    proc, port = start_server(home, log)
    try:
        record = json.loads((home / "server.json").read_text())
        assert record["url"] == f"http://127.0.0.1:{port}" and record["pid"] == proc.pid
        served = search_json(home, "red circle", "-k", "7")
        assert "GET /api/search?q=red+circle&k=7" in log.read_text()  # the server answered it
        assert "--model" not in log.read_text()
        refused = run_cli("search", "red circle", "-k", "0", home=home, check=False)
        assert refused.returncode == 2 and refused.stderr.startswith("error: k must be between 1"), refused.stderr
        # The server's own model named: it answers; another model: this process searches itself.
        search_json(home, "red circle", "-k", "7", "--model", "synthetic")
        filtered = search_json(home, "red circle", "-k", "7", "--media", "photo", "--taken", "2020..2099")
        assert "&taken=2020..2099&media=photo" in log.read_text()  # filters go to the server by their names
        assert [h["image_id"] for h in filtered] == [h["image_id"] for h in served]  # every file: a dated photo
        requests = log.read_text().count("GET /api/search")
        assert requests == 4
        run_cli("search", "red circle", "--model", "open_clip:tagscope-tiny", home=home, check=False)
        assert log.read_text().count("GET /api/search") == requests
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert not (home / "server.json").exists()  # withdrawn on SIGTERM
    in_process = search_json(home, "red circle", "-k", "7")
    assert [h["image_id"] for h in in_process] == [h["image_id"] for h in served]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(in_process, served))
    # A record left by a killed server (dead pid, closed port) is ignored.
    (home / "server.json").write_text(json.dumps({**record, "pid": proc.pid}))
    assert [h["image_id"] for h in search_json(home, "red circle", "-k", "7")] == [h["image_id"] for h in served]
