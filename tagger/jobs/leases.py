"""Leases on a job's tasks: who runs a task now, until when, and what to hand out again.

A job is split into tasks (``job_tasks`` rows, a few hundred image ids each) when it is queued.
Running one takes a lease on its row (:func:`claim`) that a heartbeat thread renews while the
task runs (:func:`heartbeat`); finishing marks the row done. A worker killed with ``kill -9``
stops renewing, its lease expires, and any live worker's sweeper (:mod:`tagger.jobs.sweeper`) puts the
row back in the queue and sends the task again: the job goes on within a lease and a sweep,
whatever the broker does with the message the dead worker held. A message delivered twice
(the broker's own redelivery plus the sweeper's) finds the row done or leased and does nothing.

A queued job's scan (registering a schedule's folders) runs under a lease on the job row itself,
the same way: :func:`claim_scan`, :func:`renew_scan`, and :func:`expired_scans` for the sweeper.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, update

from core.db import Database
from core.outage import outage_reason
from core.schema import Job, JobTask, utcnow

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE = "queued", "running", "done"
ACTIVE_JOB_STATES = ("queued", "scanning", "running")


def worker_name() -> str:
    """host:pid of this process, as lease rows name their holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def ids_to_bytes(ids: Sequence[int]) -> bytes:
    return np.asarray(ids, dtype=np.int64).tobytes()


def ids_from_bytes(raw: bytes) -> list[int]:
    return np.frombuffer(raw, dtype=np.int64).tolist()


def add_tasks(db: Database, job_id: int, chunks: Sequence[Sequence[int]]) -> list[int]:
    """One queued task row per chunk of image ids; their ids, in order."""
    now = utcnow()
    with db.session() as s:
        rows = [JobTask(job_id=job_id, image_ids=ids_to_bytes(chunk), size=len(chunk), state=QUEUED, queued_at=now)
                for chunk in chunks]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def claim(db: Database, task_id: int, lease_s: float) -> list[int] | None:
    """Take the lease on a task of a running job: its image ids, or None when it is done, leased
    by a live worker, or its job is not running (cancelled, failed). Atomic: of two deliveries
    of one task, one wins."""
    now = utcnow()
    with db.session() as s:
        row = s.execute(select(JobTask.job_id, JobTask.image_ids).where(JobTask.id == task_id)).first()
        if row is None:
            return None
        running = select(Job.id).where(Job.id == row.job_id, Job.state == "running").exists()
        won = s.execute(update(JobTask)
                        .where(JobTask.id == task_id, JobTask.state != DONE, running,
                               (JobTask.state == QUEUED) | (JobTask.lease_until < now))
                        .values(state=RUNNING, worker=worker_name(), lease_until=now + timedelta(seconds=lease_s),
                                attempts=JobTask.attempts + 1, started_at=now)).rowcount
    return ids_from_bytes(row.image_ids) if won else None


def renew(db: Database, task_id: int, lease_s: float) -> bool:
    """Extend this worker's lease; False when it lost it (a sweeper gave the task away)."""
    with db.session() as s:
        return bool(s.execute(update(JobTask).where(JobTask.id == task_id, JobTask.state == RUNNING,
                                                    JobTask.worker == worker_name())
                              .values(lease_until=utcnow() + timedelta(seconds=lease_s))).rowcount)


@contextmanager
def heartbeat(renew_lease: Callable[[], bool], lease_s: float, what: str) -> Iterator[None]:
    """Call ``renew_lease`` every quarter lease from a thread while the block runs (model loading
    and long batches included); the thread dies with the process, and so does the lease."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_s / 4):
            try:
                if not renew_lease():
                    log.warning("%s: lease lost (it may run twice; the result is the same)", what)
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the work
                if outage_reason(exc) is None:
                    log.exception("%s: lease renewal failed", what)
                else:  # a restart: the next beat renews it
                    log.warning("%s: lease not renewed: the database is unreachable (%s)", what, outage_reason(exc))

    thread = threading.Thread(target=beat, name=f"lease {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def finish(db: Database, task_id: int) -> None:
    with db.session() as s:
        s.execute(update(JobTask).where(JobTask.id == task_id)
                  .values(state=DONE, finished_at=utcnow(), lease_until=None))


def expire(db: Database, now=None) -> list[tuple[int, int]]:
    """Tasks whose holder stopped renewing (a dead worker): put back in the queue, each by
    exactly one caller. Returns their (job id, task id) to send again."""
    now = now or utcnow()
    with db.session() as s:
        stale = s.execute(select(JobTask.id, JobTask.job_id).join(Job, Job.id == JobTask.job_id)
                          .where(JobTask.state == RUNNING, JobTask.lease_until < now, Job.state == "running")).all()
        taken = []
        for task_id, job_id in stale:
            if s.execute(update(JobTask).where(JobTask.id == task_id, JobTask.state == RUNNING,
                                               JobTask.lease_until < now)
                         .values(state=QUEUED, queued_at=now, worker=None)).rowcount:
                taken.append((job_id, task_id))
    return taken


def unclaimed(db: Database, older_than_s: float, limit: int) -> list[tuple[int, int]]:
    """Queued tasks of running jobs nobody claimed for ``older_than_s`` (their message was lost:
    a broker that does not redeliver what a killed consumer held); their ``queued_at`` is
    reset by exactly one caller. Returns (job id, task id) to send again."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than_s)
    with db.session() as s:
        old = s.execute(select(JobTask.id, JobTask.job_id).join(Job, Job.id == JobTask.job_id)
                        .where(JobTask.state == QUEUED, JobTask.queued_at < cutoff, Job.state == "running")
                        .order_by(JobTask.id).limit(limit)).all()
        taken = []
        for task_id, job_id in old:
            if s.execute(update(JobTask).where(JobTask.id == task_id, JobTask.state == QUEUED,
                                               JobTask.queued_at < cutoff).values(queued_at=now)).rowcount:
                taken.append((job_id, task_id))
    return taken


def requeue_unfinished(db: Database, job_id: int) -> list[int]:
    """Every task of ``job_id`` not done, back in the queue (resume): their ids to send."""
    with db.session() as s:
        ids = s.scalars(select(JobTask.id).where(JobTask.job_id == job_id, JobTask.state != DONE)
                        .order_by(JobTask.id)).all()
        s.execute(update(JobTask).where(JobTask.job_id == job_id, JobTask.state != DONE)
                  .values(state=QUEUED, queued_at=utcnow(), worker=None, lease_until=None))
    return list(ids)


def claim_scan(db: Database, job_id: int, lease_s: float) -> dict[str, Any] | None:
    """Take the lease on a queued job's scan: its params, or None when another live worker has
    it or it is past scanning."""
    now = utcnow()
    with db.session() as s:
        won = s.execute(update(Job).where(Job.id == job_id, (Job.state == "queued") | (
            (Job.state == "scanning") & (Job.lease_until < now)))
            .values(state="scanning", worker=worker_name(), lease_until=now + timedelta(seconds=lease_s),
                    started_at=now)).rowcount
        return dict(s.get(Job, job_id).params) if won else None


def renew_scan(db: Database, job_id: int, lease_s: float) -> bool:
    with db.session() as s:
        return bool(s.execute(update(Job).where(Job.id == job_id, Job.state == "scanning",
                                                Job.worker == worker_name())
                              .values(lease_until=utcnow() + timedelta(seconds=lease_s))).rowcount)


def expired_scans(db: Database, lease_s: float) -> list[int]:
    """Queued or scanning jobs whose lease ran out (the scan's worker died, or its message was
    lost): each handed to exactly one caller, to send again."""
    now = utcnow()
    with db.session() as s:
        ids = s.scalars(select(Job.id).where(Job.state.in_(("queued", "scanning")), Job.lease_until < now)).all()
        return [i for i in ids if s.execute(
            update(Job).where(Job.id == i, Job.state.in_(("queued", "scanning")), Job.lease_until < now)
            .values(state="queued", lease_until=now + timedelta(seconds=lease_s))).rowcount]
