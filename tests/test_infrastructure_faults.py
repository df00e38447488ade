"""Infrastructure faults (issue 22): PostgreSQL, Redis and RabbitMQ restarted in the middle of a
job, a worker killed four times on the embedded broker, searches during a database outage.

Each test runs real ``tagscope worker`` / ``tagscope serve`` processes against servers of its own
(tests/private_services.py: restarting the machine's shared ones would cut other clients off),
and holds the job to what its fault would break, read from the worker's log and the database,
never from a clock: a task that failed, or that a worker stopped working on, comes back only
when its lease runs out, and the sweeper says so ("sent again N expired"); so a job done with no
task expired proves that workers reconnected and lost work was sent again at once. Waits are
bounded only to end a hung test; how long recovery takes is not asserted.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.outage import outage_reason
from core.schema import TAGGED, Image, Job, JobTask
from migrations import get_database

from . import ROOT
from .commands import run_cli, tagscope_env
from .databases import assert_consistent, forget_database
from .photos import photos_subset
from .private_services import Postgres, RabbitMQ, Redis
from .servers import start_server, start_worker, stop_process
from .waiting import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.services]

LEASE_S = 60  # the default
WAIT_S = 600  # bounds each wait for a job to end (a hung test fails), not the job's speed
BROKER_DOWN_S = 20
JOB_ENV = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TASK_SIZE": "40", "TAGSCOPE_BATCH_SIZE": "4",
           "TAGSCOPE_LOADER_WORKERS": "0"}


def tolerant(fn, default=None):
    """``fn()``, or ``default`` while the database is down (the test's own reads ride out the fault too)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - only outages are waited out
        if outage_reason(exc) is None:
            raise
        return default


def tagged(url: str) -> int:
    with get_database(url, migrate=False).session() as s:
        return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == TAGGED)))


def job_state(url: str) -> str:
    with get_database(url, migrate=False).session() as s:
        return s.scalar(select(Job.state).where(Job.id == 1))


def wait_tagged(url: str, n: int, timeout: float = 120) -> None:
    wait_until(lambda: tolerant(lambda: tagged(url), 0) >= n, timeout=timeout, every=0.1, what=f"{n} tagged")


def wait_done(url: str, log: Path) -> None:
    """Until job 1 is done (its worker's log in the error if it never is)."""
    try:
        wait_until(lambda: tolerant(lambda: job_state(url)) == "done", timeout=WAIT_S, every=0.5, what="the job done")
    except AssertionError:
        raise AssertionError(f"job not done {WAIT_S} s after the fault\n{log.read_text()[-4000:]}") from None


def expired_tasks_sent_again(log: str) -> int:
    """Tasks the sweepers sent again because their lease ran out (a task a worker stopped on)."""
    return sum(int(n) for n in re.findall(r"sweeper: sent again (\d+) expired", log))


def assert_tagged_once(url: str, n: int) -> None:
    """Every photo tagged by the job, exactly once: one embedding and one set of tags per image."""
    assert assert_consistent(url) == n
    with get_database(url, migrate=False).session() as s:
        job = s.get(Job, 1)
        assert (job.state, job.done, job.failed, job.total) == ("done", n, 0, n)
        assert s.scalar(select(func.count()).select_from(Image).where(Image.job_id != 1)) == 0


def run_job_through(fault, env: dict[str, str], home: Path, url: str, photos: Path, n: int) -> None:
    """Queue ``photos``, start a worker, apply ``fault()`` mid-job, wait for the job to end. The
    worker must live through it, and no task wait for its lease to run out."""
    run_cli("tag", str(photos), "--no-wait", home=home, **env)
    _through(fault, env, home, url, n)


def _through(fault, env: dict[str, str], home: Path, url: str, n: int) -> None:
    worker = start_worker(home, env, "--loader-workers", "0")
    try:
        wait_tagged(url, n // 5)
        fault()
        wait_done(url, home / "worker.log")
        assert worker.poll() is None, "the worker did not outlive the fault"
    finally:
        stop_process(worker)
    assert_tagged_once(url, n)
    log = (home / "worker.log").read_text()
    assert expired_tasks_sent_again(log) == 0, "a task waited for its lease to run out\n" + log[-4000:]


def follow_job_through(fault, env: dict[str, str], home: Path, url: str, photos: Path, n: int) -> str:
    """As :func:`run_job_through`, ``tagscope tag`` waiting for the job as a user runs it (no
    ``--no-wait``): it must follow the job through the fault and end with its summary (its output)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "tag.log", "w") as out:
        tag = subprocess.Popen([sys.executable, "-m", "tagscope", "tag", str(photos)], cwd=ROOT,
                               env=tagscope_env(home, PYTHONPATH=str(ROOT), **env), stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: tolerant(lambda: job_state(url)) == "running", timeout=120, every=0.2,
                   what="the job queued by `tagscope tag`")
        _through(fault, env, home, url, n)
        rc = tag.wait(timeout=60)
    finally:
        if tag.poll() is None:
            os.killpg(tag.pid, signal.SIGKILL)
    output = (home / "tag.log").read_text()
    assert rc == 0, output[-4000:]
    return output


def outage(service, seconds: float):
    def fault() -> None:
        service.stop()
        time.sleep(seconds)
        service.start()
    return fault


@pytest.fixture
def postgres(tmp_path):
    server = Postgres()
    yield server
    forget_database(server.url)
    server.close()


def test_a_job_goes_on_through_a_postgresql_restart(postgres, synthetic_photos, tmp_path):
    home = tmp_path / "home"
    env = {**JOB_ENV, "TAGSCOPE_DATABASE_URL": postgres.url, "TAGSCOPE_BROKER_URL": "embedded"}
    run_cli("db", "upgrade", home=home, **env)
    output = follow_job_through(outage(postgres, 3), env, home, postgres.url, synthetic_photos, 480)
    log = (home / "worker.log").read_text()
    # The task the restart broke waited for the database and went on (no lease lost, no task failed).
    assert "the database is unreachable" in log and "the database answers again" in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    # So did the `tagscope tag` following the job: it waited, then printed the job's summary.
    assert "following job 1: the database is unreachable" in output, output[-4000:]
    assert "job 1: 480 processed this run (0 failed)" in output and "480 tagged" in output, output[-4000:]
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_job_goes_on_through_a_broker_restart(broker, synthetic_photos, tmp_path):
    server = (Redis if broker == "redis" else RabbitMQ)()
    try:
        home = tmp_path / "home"
        url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
        env = {**JOB_ENV, "TAGSCOPE_BROKER_URL": server.url}
        # 20 s down: longer than the 3 reconnections (2 + 4 + 6 s) workers used to give up after.
        run_job_through(outage(server, BROKER_DOWN_S), env, home, url, synthetic_photos, 480)
    finally:
        server.close()
    log = (home / "worker.log").read_text()
    if broker == "redis":  # a Redis without persistence comes back empty: the sweeper sent the queue again
        assert re.search(r"and [1-9][0-9]* lost task", log), log[-4000:]


# -- a worker killed four times on the embedded broker ----------------------------------------

KILL_LEASE_S = 24  # a short lease keeps the test short
# Kills late in the job, so that what the last restart leaves is mostly the dead workers' work:
# mid-task (its task leased), while starting (nothing taken), as soon as it is ready (it has
# just taken a message and may not have claimed its task: the message is lost), mid-task.
KILLS = (("mid-task", 1500), ("starting", 0), ("just ready", 0), ("mid-task", 30))


@pytest.fixture(scope="module")
def photos_2400(tmp_path_factory) -> Path:
    from mkt.synthetic import generate

    return generate(tmp_path_factory.mktemp("photos-2400"), n=2400, seed=22)


def lose_message_of_last_task(home: Path) -> int:
    """Leave the last task's message as a consumer killed between taking it and claiming its
    task leaves it in kombu's SQL transport: delivered (invisible), never to come back."""
    with sqlite3.connect(home / "broker.sqlite") as conn:
        msg_id, payload = conn.execute("SELECT id, payload FROM kombu_message ORDER BY id DESC LIMIT 1").fetchone()
        job_id, task_id = json.loads(base64.b64decode(json.loads(payload)["body"]))[0]
        conn.execute("UPDATE kombu_message SET visible = 0 WHERE id = ?", (msg_id,))
    assert job_id == 1
    return task_id


def kill_when(moment: str, worker, home: Path, url: str, log_from: int, tagged_more: int) -> None:
    """SIGKILL the worker's process group at ``moment`` of its life."""
    if moment == "mid-task":
        wait_tagged(url, max(tagged(url) + 30, tagged_more))
    elif moment == "starting":  # importing (torch's libraries being mapped), loading: nothing taken yet
        wait_until(lambda: "libtorch" in Path(f"/proc/{worker.pid}/maps").read_text(), timeout=120, every=0.02,
                   what="the worker importing torch")
    else:
        wait_until(lambda: "ready." in (home / "worker.log").read_text()[log_from:], timeout=120, every=0.05,
                   what="the worker ready")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def test_work_a_worker_killed_four_times_held_comes_back(photos_2400, tmp_path):
    home = tmp_path / "home"
    url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    env = {**JOB_ENV, "TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_TASK_SIZE": "60",
           "TAGSCOPE_TASK_LEASE": str(KILL_LEASE_S)}
    run_cli("tag", str(photos_2400), "--no-wait", home=home, **env)
    lost_task = lose_message_of_last_task(home)
    worker, log_from = start_worker(home, env, "--loader-workers", "0"), 0
    try:
        for moment, tagged_more in KILLS:
            kill_when(moment, worker, home, url, log_from, tagged_more)
            assert job_state(url) == "running", "the job ended before the last kill: make it longer"
            log_from = len((home / "worker.log").read_text())
            worker = start_worker(home, env, "--loader-workers", "0", log_mode="a")
        # The mid-task kills' leased tasks come back when their lease runs out and a sweep sees
        # it; the lost message when an idle worker's sweeper finds its task unclaimed.
        wait_done(url, home / "worker.log")
    finally:
        stop_process(worker)
    assert_tagged_once(url, 2400)
    log = (home / "worker.log").read_text()
    assert expired_tasks_sent_again(log) >= 1, log[-4000:]  # the task the last mid-task kill held
    assert re.search(r"sweeper: sent again \d+ expired and [1-9]\d* lost task", log), log[-4000:]
    with get_database(url, migrate=False).session() as s:
        lost = s.get(JobTask, lost_task)
        assert lost.state == "done" and lost.started_at is not None  # its message lost, the task sent again


# -- searches during a database outage --------------------------------------------------------

def get(url: str, timeout: float = 60) -> tuple[int, str]:
    """(status, body) of a GET; a server that does not answer within ``timeout`` is an error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def black_hole(port: int) -> socket.socket:
    """A listener that never answers on ``port``: a frozen server, as a client sees it."""
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", port))
    hole.listen(64)
    return hole


def assert_503(base: str) -> str:
    """A search and a page answered 503 naming the outage (not a hang: a request the server never
    answers ends :func:`get` with an error)."""
    status, body = get(base + "/api/search?q=red+circle")
    assert status == 503, (status, body)
    error = json.loads(body)
    assert error["status"] == 503 and error["error"].startswith("the database is unreachable: "), error
    page_status, page = get(base + "/?q=red+circle")
    assert page_status == 503 and "the database is unreachable" in page, (page_status, page[-2000:])
    return error["error"]


def test_searches_during_a_database_outage_get_a_503_then_work_again(postgres, synthetic_photos, tmp_path):
    home = tmp_path / "home"
    env = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_DATABASE_URL": postgres.url}
    run_cli("db", "upgrade", home=home, **env)
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 60)), home=home, **env)
    server, base = start_server(home, **env)
    try:
        status, body = get(base + "/api/search?q=red+circle")
        assert status == 200 and json.loads(body)["results"], body
        postgres.stop()
        try:
            assert_503(base)  # a stopped server: the connection refused
            with black_hole(postgres.port):  # a server that never answers: the connect timeout ends the wait
                assert_503(base)
        finally:
            postgres.start()
        back = wait_until(lambda: (lambda r: r[0] == 200 and r)(get(base + "/api/search?q=red+circle")), timeout=120,
                          every=0.5, what="searches answered again")
        assert json.loads(back[1])["results"]
    finally:
        stop_process(server)
