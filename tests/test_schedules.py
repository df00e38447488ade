"""Periodic re-tagging: schedules in SQL, run by real Celery beat and worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from core.errors import TagscopeError
from tagger.jobs.schedules import format_every, parse_every
from tagger.jobs.task_names import TICK_TASK

from . import ROOT
from .commands import run_cli, tagscope_env
from .photos import photos_subset, read_labels_jsonl
from .servers import start_worker, stop_process
from .waiting import wait_until


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("15m", 900), ("1h", 3600), ("1d", 86400),
                                           ("1h30m", 5400), ("45", 45), (" 2 h ", 7200)])
def test_intervals_parse(text, seconds):
    assert parse_every(text) == seconds
    assert parse_every(format_every(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5s", "0s", "1h 30"])
def test_bad_intervals_say_what_to_write(text):
    with pytest.raises(TagscopeError, match="use e.g. 10s, 15m, 1h, 1d|at least 1s"):
        parse_every(text)


def status(home: Path, env: dict[str, str]) -> dict:
    return json.loads(run_cli("status", "--json", home=home, **env).stdout)


def test_schedules_need_a_broker_and_can_be_removed(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    home = tmp_path / "home"
    refused = run_cli("schedule", "add", str(photos), "--every", "1h", home=home, check=False)
    assert refused.returncode == 2 and "TAGSCOPE_BROKER_URL=embedded" in refused.stderr
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_MODEL": "synthetic"}
    assert run_cli("schedule", "add", str(photos), "--every", "1d", home=home, **env).stdout.startswith(
        "schedule 1: ")
    rows = json.loads(run_cli("schedule", "list", "--json", home=home, **env).stdout)["schedules"]
    assert [(r["id"], r["every"], r["paths"], r["model"], r["last_job"]) for r in rows] == [
        (1, "1d", [str(photos.resolve())], "synthetic", None)]
    run_cli("schedule", "remove", "1", home=home, **env)
    gone = run_cli("schedule", "remove", "1", home=home, check=False, **env)
    assert gone.returncode == 2 and "tagscope schedule list" in gone.stderr


@pytest.mark.worker
@pytest.mark.slow
def test_a_schedule_tags_added_files_and_marks_removed_ones_missing(synthetic_photos, tmp_path):
    home = tmp_path / "home"
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_BEAT_TICK": "1",
           "TAGSCOPE_TASK_LEASE": "10"}
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 20)
    run_cli("schedule", "add", str(photos), "--every", "3s", home=home, **env)
    with open(home / "beat.log", "w") as log:
        beat = subprocess.Popen([sys.executable, "-m", "tagscope", "beat"], cwd=ROOT, env=tagscope_env(home, **env),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = start_worker(home, env, "--loader-workers", "0")
    try:
        first = wait_until(lambda: (lambda s: s["images"]["tagged"] == 20 and s)(status(home, env)), timeout=120,
                           every=1)
        assert first["last_job"]["kind"] == "schedule"
        for name in sorted(read_labels_jsonl(synthetic_photos))[20:25]:  # new photos arrive ...
            os.link(synthetic_photos / name, photos / name)
        removed = sorted(photos.iterdir())[0]
        removed.unlink()  # ... and one is deleted
        # the job's rows come first, its close brings the index up to date after: wait for both
        wait_until(lambda: (lambda s: s["images"]["tagged"] == 24 and s["images"]["missing"] == 1
                            and s["index"]["size"] == 24)(status(home, env)), timeout=120, every=1,
                   what="the added photos tagged, the removed one missing and the index at 24")
        unplugged = tmp_path / "unplugged"  # the folder's drive goes away: the next runs leave it alone
        unplugged.mkdir()
        for photo in photos.iterdir():
            photo.rename(unplugged / photo.name)
        warned = wait_until(lambda: next((j for j in json.loads(run_cli("jobs", "--json", home=home, **env).stdout)[
            "jobs"] if j["warnings"]), None), timeout=120, every=1, what="a scheduled run that found the folder empty")
    finally:
        stop_process(worker)
        stop_process(beat)
    assert warned["warnings"][0].startswith(f"{photos} holds no photos now but 24 registered ones are under it")
    unchanged = status(home, env)
    assert unchanged["images"]["tagged"] == 24 and unchanged["images"]["missing"] == 1
    assert unchanged["index"]["size"] == 24
    jobs = json.loads(run_cli("jobs", "--json", "--limit", "1000", home=home, **env).stdout)["jobs"][::-1]
    ended = [j for j in jobs if j["finished_at"]]
    assert len(ended) >= 2 and all(j["kind"] == "schedule" and j["schedule_id"] == 1 for j in jobs)
    assert sum(j["done"] for j in ended) == 25  # each file tagged once: runs tag only what needs it
    for before, after in zip(ended, ended[1:]):  # a run never overlaps the previous one
        assert datetime.fromisoformat(after["created_at"]) >= datetime.fromisoformat(before["finished_at"])
    assert TICK_TASK in (home / "beat.log").read_text()


@pytest.mark.worker
@pytest.mark.slow
def test_a_worker_with_beat_runs_schedules_on_its_own(tmp_path):
    home = tmp_path / "home"
    photos = tmp_path / "photos"
    photos.mkdir()
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_BEAT_TICK": "1"}
    run_cli("schedule", "add", str(photos), "--every", "2s", home=home, **env)
    worker = start_worker(home, env, "--beat")
    try:
        runs = wait_until(lambda: (lambda rows: len(rows) >= 2 and rows)(
            json.loads(run_cli("jobs", "--json", home=home, **env).stdout)["jobs"]), timeout=90, every=1)
    finally:
        stop_process(worker)
    assert all(j["kind"] == "schedule" and j["state"] == "done" and j["total"] == 0 for j in runs[1:])
    assert (home / "celerybeat-schedule").exists() or list(home.glob("celerybeat-schedule*"))
