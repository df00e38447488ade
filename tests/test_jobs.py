"""Job control: ``tagscope jobs`` (list, show, cancel, resume, retry) and the same in the JSON
API, in-process and with a real worker on the embedded broker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from . import ROOT
from .commands import run_cli, tagscope_env
from .databases import tagged_count
from .freeze import freeze_worker
from .photos import photos_subset
from .servers import start_worker, stop_process
from .waiting import wait_until


def jobs_json(home: Path, *args: str, **env: str) -> dict:
    return json.loads(run_cli("jobs", *args, "--json", home=home, **env).stdout)


def test_jobs_list_and_show_count_from_images_and_match_the_api(synthetic_photos, tmp_path):
    from core.settings import load_settings
    from web import create_app

    home = tmp_path / "home"
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 30)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    run_cli("tag", str(photos), home=home, TAGSCOPE_MODEL="synthetic")
    listed = jobs_json(home)["jobs"]
    assert [(j["id"], j["state"], j["done"], j["failed"], j["total"], j["remaining"]) for j in listed] == [
        (1, "done", 30, 1, 31, 0)]
    shown = jobs_json(home, "show", "1")
    assert shown == listed[0] and shown["tasks"]["done"] >= 1 and shown["rate_img_s"] > 0
    assert shown["runner"] == "in-process" and shown["model"]["spec"] == "synthetic"
    client = create_app(load_settings(environ={}, home=str(home))).test_client()
    assert client.get("/api/jobs").get_json() == {"jobs": listed}
    assert client.get("/api/jobs/1").get_json() == shown
    assert client.get("/api/jobs/9").status_code == 404
    answer = client.post("/api/jobs/1/retry")  # no broker: the web process must not tag
    assert answer.status_code == 409 and "tagscope jobs retry 1" in answer.get_json()["error"]
    assert client.post("/api/jobs/1/cancel").status_code == 400  # done already
    # Retry the failed image, now fixed, in a new job (in-process: this command runs it).
    shutil.copy(next(p for p in sorted(photos.iterdir()) if p.suffix == ".png"), photos / "broken.jpg")
    out = run_cli("jobs", "retry", "1", home=home, TAGSCOPE_MODEL="synthetic")
    assert out.stdout.startswith("job 2  retry  done  1 done, 0 failed of 1")
    refused = run_cli("jobs", "resume", "1", home=home, check=False)
    assert refused.returncode == 2 and "tagscope jobs retry 1" in refused.stderr
    text = run_cli("jobs", home=home).stdout.splitlines()
    assert text[0].startswith("job 2  retry  done") and text[1].startswith("job 1  tag  done  30 done, 1 failed")


@pytest.mark.worker
@pytest.mark.slow
def test_a_cancelled_job_stops_and_resume_finishes_it_on_a_worker(synthetic_photos, tmp_path):
    """The worker is frozen (SIGSTOP) while the job is cancelled, so the cancel lands mid-job
    however fast this machine tags; once thawed, a running task stops after its batch and the
    queued ones do nothing when they arrive (the worker's log says so for each of the 12 tasks)."""
    home = tmp_path / "home"
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TASK_SIZE": "10",
           "TAGSCOPE_BATCH_SIZE": "2"}
    url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 120)), "--no-wait", home=home, **env)
    worker = start_worker(home, env, "--loader-workers", "0")
    log = home / "worker.log"
    try:
        wait_until(lambda: tagged_count(url) >= 10, timeout=120, every=0.05)
        freeze_worker(worker, home / "tagscope.sqlite")
        try:
            assert run_cli("jobs", "cancel", "1", home=home, **env).stdout.startswith("job 1  tag  cancelled")
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        cancelled = jobs_json(home, "show", "1", **env)
        assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled by the user"
        # Every task message ends with a line: tagged (run whole, or stopped after the batch it was
        # on: "no longer running: stopping") or skipped (it arrived after the cancel).
        wait_until(lambda: log.read_text().count(": tagged ") + log.read_text().count("skipped") >= 12,
                   timeout=60, what="all 12 task messages handled")
        stopped = tagged_count(url)
        assert 10 <= stopped < 120
        assert jobs_json(home, "show", "1", **env)["done"] == stopped
        run_cli("jobs", "resume", "1", home=home, **env)
        done = wait_until(lambda: (lambda j: j["state"] == "done" and j)(jobs_json(home, "show", "1", **env)),
                          timeout=120, every=0.5)
    finally:
        stop_process(worker)
    assert (done["done"], done["failed"], done["total"]) == (120, 0, 120)
    assert tagged_count(url) == 120


def lease_ran_out(url: str, job_id: int, lease_s: float) -> bool:
    """Whether a lease has passed since the job's last sign of life (its start, a task's lease,
    start or end): what an in-process run checks before it calls the job interrupted."""
    from datetime import timedelta

    from sqlalchemy import select

    from core.schema import Job, JobTask, as_utc, utcnow
    from migrations import get_database

    with get_database(url).session() as s:
        started = s.scalar(select(Job.started_at).where(Job.id == job_id))
        tasks = s.execute(select(JobTask.lease_until, JobTask.started_at, JobTask.finished_at)
                          .where(JobTask.job_id == job_id)).all()
    lease = timedelta(seconds=lease_s)
    ends = [started and started + lease] + [t.lease_until for t in tasks] \
        + [when + lease for t in tasks for when in (t.started_at, t.finished_at) if when]
    return all(as_utc(end) < utcnow() for end in ends if end is not None)


@pytest.mark.worker
@pytest.mark.slow
def test_an_interrupted_in_process_job_is_marked_and_resumed(synthetic_photos, tmp_path):
    home = tmp_path / "home"
    env = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TASK_SIZE": "10", "TAGSCOPE_TASK_LEASE": "2"}
    url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 150)
    proc = subprocess.Popen([sys.executable, "-m", "tagscope", "tag", str(photos), "--batch-size", "2",
                             "--loader-workers", "0"], cwd=ROOT, env=tagscope_env(home, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: tagged_count(url) >= 15, timeout=120, every=0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert jobs_json(home, "show", "1", **env)["state"] == "running"  # nobody could say otherwise yet
    # Past the lease by the database's times: the next in-process run knows the command is gone.
    wait_until(lambda: lease_ran_out(url, 1, lease_s=2), timeout=120, what="job 1's lease to run out")
    (tmp_path / "empty").mkdir()
    run_cli("tag", str(tmp_path / "empty"), home=home, **env)
    interrupted = jobs_json(home, "show", "1", **env)
    assert interrupted["state"] == "cancelled" and "tagscope jobs resume 1" in interrupted["error"]
    assert 15 <= interrupted["done"] < 150
    out = run_cli("jobs", "resume", "1", home=home, **env)
    assert out.stdout.startswith("job 1  tag  done  150 done, 0 failed of 150"), out.stdout
    assert tagged_count(url) == 150
