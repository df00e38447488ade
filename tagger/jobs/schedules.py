"""Periodic re-tagging: schedules stored in SQL, started by Celery beat's tick.

A schedule is a set of folders, an interval and the model spec to tag with (fixed when the
schedule is added). Beat sends ``tagscope.tick`` every few seconds (:mod:`tagger.jobs.celery_app`);
the tick (:func:`start_due`) turns every due schedule into a queued job, exactly once however
many ticks race, and never while the schedule's previous job is still active: that occurrence
is skipped, not piled up. A job of a schedule registers new, changed and missing files and tags
only what needs it (:mod:`tagger.jobs.start`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from core.db import Database
from core.errors import TagscopeError
from core.schema import Job, Schedule, iso_utc, utcnow
from tagger.jobs.leases import ACTIVE_JOB_STATES
from tagger.jobs.rows import queue_scan_job
from tagger.params import JobParams

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_EVERY_S = 1
MAX_EVERY_S = 365 * 86400  # a year; SQL keeps the interval in an INTEGER column (at most 2^31 - 1 s)


def parse_every(text: str) -> int:
    """``10s``, ``15m``, ``1h``, ``1d``, ``1h30m`` (or plain seconds) -> seconds, from
    ``MIN_EVERY_S`` to ``MAX_EVERY_S``."""
    value = str(text).strip().lower()
    if value.isdigit():
        seconds = int(value)
    else:
        parts = re.findall(r"(\d+)\s*([smhdw])", value)
        if not parts or re.sub(r"\s", "", value) != "".join(n + u for n, u in parts):
            raise TagscopeError(f"bad interval {text!r}: use e.g. 10s, 15m, 1h, 1d or 1h30m")
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    return check_every(seconds, repr(text))


def check_every(seconds: int, given: str | None = None) -> int:
    """An interval in seconds within ``MIN_EVERY_S`` to ``MAX_EVERY_S``; else a one-line error naming the bound."""
    given = given or f"{seconds}s"
    if seconds < MIN_EVERY_S:
        raise TagscopeError(f"bad interval {given}: at least {MIN_EVERY_S}s")
    if seconds > MAX_EVERY_S:
        raise TagscopeError(f"bad interval {given}: at most {format_every(MAX_EVERY_S)} (a year), e.g. 30d")
    return seconds


def format_every(seconds: int) -> str:
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"


def add_schedule(db: Database, paths: Sequence[str], every_s: int, spec: str, params: JobParams) -> int:
    """A new schedule, first due now. ``paths`` are made absolute: beat's workers may run elsewhere."""
    every_s = check_every(every_s)
    folders = [str(Path(p).expanduser().resolve()) for p in paths]
    for folder in folders:
        if not Path(folder).is_dir():
            raise TagscopeError(f"{folder} is not a folder: give the folder of photos to re-tag")
    with db.session() as s:
        row = Schedule(paths=folders, every_s=every_s, spec=spec, params={"tag": params.to_json()},
                       next_run_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


class NoSuchSchedule(TagscopeError):
    """A schedule id that does not exist (the API answers 404)."""


def remove_schedule(db: Database, schedule_id: int) -> None:
    with db.session() as s:
        if not s.execute(delete(Schedule).where(Schedule.id == schedule_id)).rowcount:
            raise NoSuchSchedule(f"no schedule {schedule_id}: see `tagscope schedule list`")


def run_now(db: Database, schedule_id: int, lease_s: float) -> int:
    """Queue a run of a schedule now, not waiting for its time (the jobs page's "run now"):
    the new job's id, its scan still to be sent. Refused while the schedule's previous job is
    active, as a due run would be skipped. The run counts as an occurrence: the next one is an
    interval later, so beat's tick does not start a second run right behind it."""
    now = utcnow()
    with db.session() as s:
        sched = s.get(Schedule, schedule_id)
        if sched is None:
            raise NoSuchSchedule(f"no schedule {schedule_id}: see `tagscope schedule list`")
        busy = sched.last_job_id is not None and s.scalar(
            select(Job.state).where(Job.id == sched.last_job_id, Job.state.in_(ACTIVE_JOB_STATES)))
        if busy:
            raise TagscopeError(f"schedule {schedule_id}'s job {sched.last_job_id} is still {busy}: wait for it "
                                f"to end, or cancel it (`tagscope jobs cancel {sched.last_job_id}`)")
        job_id = queue_scan_job(s, sched.paths, sched.spec, JobParams.from_json(sched.params["tag"]), lease_s,
                                schedule_id=sched.id)
        # Whoever moves next_run_at from the value read owns this run (beat's tick does the same).
        owned = s.execute(update(Schedule).where(Schedule.id == sched.id, Schedule.next_run_at == sched.next_run_at)
                          .values(next_run_at=now + timedelta(seconds=sched.every_s), last_job_id=job_id,
                                  last_run_at=now)).rowcount
        if not owned:
            raise TagscopeError(f"schedule {schedule_id} is starting a run right now: see its job in `tagscope jobs`")
    return job_id


def get_schedule(db: Database, schedule_id: int) -> dict[str, Any]:
    """One schedule as :func:`list_schedules` shows it."""
    for row in list_schedules(db):
        if row["id"] == schedule_id:
            return row
    raise NoSuchSchedule(f"no schedule {schedule_id}: see `tagscope schedule list`")


def list_schedules(db: Database) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.scalars(select(Schedule).order_by(Schedule.id)).all()
        last = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_([r.last_job_id for r in rows
                                                                           if r.last_job_id])))}
    out = []
    for r in rows:
        job = last.get(r.last_job_id)
        out.append({"id": r.id, "paths": list(r.paths), "every_s": r.every_s, "every": format_every(r.every_s),
                    "model": r.spec, "next_run_at": iso_utc(r.next_run_at), "last_run_at": iso_utc(r.last_run_at),
                    "last_job": None if job is None else {"id": job.id, "state": job.state}})
    return out


def start_due(db: Database, lease_s: float) -> list[int]:
    """Queue a job for every due schedule whose previous job is over; returns the new job ids
    (their scans still to be sent). A due schedule whose job still runs skips this occurrence."""
    now = utcnow()
    started = []
    with db.session() as s:
        due = s.scalars(select(Schedule).where(Schedule.next_run_at <= now).order_by(Schedule.id)).all()
    for sched in due:
        with db.session() as s:
            busy = sched.last_job_id is not None and s.scalar(
                select(Job.id).where(Job.id == sched.last_job_id, Job.state.in_(ACTIVE_JOB_STATES)))
            # Whoever moves next_run_at from the value it read owns this occurrence.
            owned = s.execute(update(Schedule).where(Schedule.id == sched.id, Schedule.next_run_at == sched.next_run_at)
                              .values(next_run_at=now + timedelta(seconds=sched.every_s))).rowcount
            if not owned or busy:
                continue
            job_id = queue_scan_job(s, sched.paths, sched.spec, JobParams.from_json(sched.params["tag"]),
                                    lease_s, schedule_id=sched.id)
            s.execute(update(Schedule).where(Schedule.id == sched.id).values(last_job_id=job_id, last_run_at=now))
        started.append(job_id)
    return started
