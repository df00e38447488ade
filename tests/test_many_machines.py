"""Many machines, one library (issue 22): three "machines" on this one, each a home of its own
(its own index copy, its own processes), sharing one PostgreSQL database and one Redis broker:
two `tagscope worker`s that keep no index, two `tagscope serve`s that keep theirs, and a machine
that queues the job and adds labels. Both servers answer during the job, one is killed mid-job
and catches up after its restart, and once the job is done both return the same ids for 20
queries; labels added on one machine are searched on the others."""

from __future__ import annotations

import json
import os
import signal
import urllib.parse
import urllib.request

import pytest

from .commands import run_cli
from .servers import start_server, start_worker, stop_process
from .services import BROKERS
from .waiting import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow]

N_PHOTOS = 2000
QUERIES = ["red thing", "blue thing", "green thing", "striped background", "checkered background", "star",
           "square", "circle", "red circle", "blue star", "green square", "dotted background", "plain background",
           "cyan thing", "white triangle", "blue arrow", "purple heart", "yellow moon", "orange diamond",
           "black ring"]


def get(url: str, path: str, **params) -> dict:
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=60) as response:
        return json.loads(response.read())


def ids(url: str, text: str, **params) -> list[int]:
    return [h["image_id"] for h in get(url, "/api/search", q=text, k=10, **params)["results"]]


def caught_up(url: str, stored: int) -> bool:
    index = get(url, "/api/status")["index"]
    return index.get("fresh") and index.get("size") == stored and index.get("position") == index.get("log_head")


def test_two_workers_and_two_search_servers_on_one_database_stay_in_step(postgres_url, tmp_path):
    from mkt.synthetic import generate

    broker = BROKERS["redis"]()
    photos = tmp_path / "photos"
    generate(photos, n=N_PHOTOS, seed=21)
    common = {"TAGSCOPE_DATABASE_URL": postgres_url, "TAGSCOPE_BROKER_URL": broker, "TAGSCOPE_MODEL": "synthetic",
              "TAGSCOPE_TASK_SIZE": "250"}
    control, m1, m2 = tmp_path / "control", tmp_path / "machine-1", tmp_path / "machine-2"
    for home in (control, m1, m2):
        home.mkdir()
    run_cli("db", "upgrade", home=control, **common)
    workers, servers = [], {}
    try:
        queued = run_cli("tag", str(photos), "--no-wait", home=control, **common)
        assert "queued" in queued.stdout + queued.stderr
        for home in (m1, m2):  # GPU machines: they tag, and keep no index
            workers.append(start_worker(home, {**common, "TAGSCOPE_KEEP_INDEX": "0"}, "--concurrency", "1"))
        servers = {home: start_server(home, **common) for home in (m1, m2)}
        url1, url2 = servers[m1][1], servers[m2][1]

        def tagged() -> int:
            return get(url1, "/api/status")["images"]["tagged"]

        wait_until(lambda: tagged() >= 400, timeout=300, what="400 photos tagged")
        for text in QUERIES[:5]:  # both servers answer during the job
            assert ids(url1, text) and ids(url2, text)
        os.killpg(servers[m2][0].pid, signal.SIGKILL)  # one search server dies mid-job
        servers[m2][0].wait(timeout=30)
        wait_until(lambda: tagged() >= 1200, timeout=300, what="1200 photos tagged")
        servers[m2] = start_server(m2, **common)
        url2 = servers[m2][1]
        assert ids(url2, "red thing")  # back at once, from its own copy
        wait_until(lambda: tagged() == N_PHOTOS, timeout=600, what="every photo tagged")
        wait_until(lambda: caught_up(url1, N_PHOTOS) and caught_up(url2, N_PHOTOS), timeout=120, every=1,
                   what="both servers' copies caught up")
        for text in QUERIES:
            assert ids(url1, text) == ids(url2, text), text
        for home in (m1, m2):  # each server built and keeps its own copy; the workers keep none
            assert list((home / "index").glob("*.faiss")), home
        assert not (control / "index").exists()
        # labels added on one machine, and a person's threshold for one, decide tags on the others (the
        # zero-shot model's own rule for "red shape" may say nothing matches: the threshold makes it match)
        run_cli("labels", "add", "red shape", home=control, **common)
        run_cli("labels", "set", "red shape", "--threshold", "0.05", home=control, **common)
        tagged_with = ids(url1, "red shape", tag="red shape")
        assert tagged_with and tagged_with == ids(url2, "red shape", tag="red shape")
    finally:
        for proc in [proc for proc, _ in servers.values()] + workers:
            stop_process(proc)
