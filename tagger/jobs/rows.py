"""Job rows: what a tagging job is (its model version and the parameters its results depend
on), its tasks, how far it got, and how it ends.

A job is queued by one machine and run by others. What the stored results depend on (the model
version, ``top_n``, ``min_score``, ``max_pixels``, ``ocr``) is fixed in the job row when it is queued; how
to run it (device, batch size, decode workers) is each worker's own setting, never the
submitter's. A worker loads the job's model version and checks it has that version before it
writes anything.

Progress is never counted: each image row records the job that last stored it
(``images.job_id``, written in the same transaction as its status and tags), so a job's
done/failed figures are a count of its images' states (:mod:`tagger.progress`), exact whatever
was killed when. A job is complete when all its tasks (:mod:`tagger.jobs.leases`) are done;
whoever sees that first closes it (:func:`tagger.jobs.close.close_job_if_complete`), freezes its
figures and brings the index up to date.

SQL only (no torch, no FAISS): ``tagscope jobs`` and ``tagscope status`` read these rows fast.

States: ``queued`` (a scheduled job waiting for its scan), ``scanning``, ``running``, then
``done``, ``failed`` (the model could not run it) or ``cancelled`` (``tagscope jobs cancel``,
or an in-process run that was interrupted; ``tagscope jobs resume`` goes on).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import Database
from core.schema import (
    DUPLICATE,
    FAILED,
    TAGGED,
    Image,
    Job,
    ModelVersion,
    get_or_create_model_version,
    utcnow,
)
from core.sql_in import chunks, one_of
from tagger.jobs import leases
from tagger.params import JobInfo, JobParams
from tagger.progress import progress

if TYPE_CHECKING:
    from mkt.tagmodel import TagModel

IN_PROCESS, WORKERS = "in-process", "workers"


def ensure_model_version(db: Database, model: TagModel) -> int:
    """The id of ``model``'s version row (created on first use)."""
    with db.session() as s:
        return get_or_create_model_version(s, model.version, model.spec, model.embed_dim).id


def create_job(db: Database, model_version_id: int | None, image_ids: Sequence[int], params: JobParams,
                   task_size: int, runner: str, kind: str = "tag",
                   paths: Sequence[str] | None = None) -> tuple[int, list[int]]:
    """A running job tagging ``image_ids`` with one model version, split into tasks of
    ``task_size``; done at once when empty. ``paths``: the folders it was asked to tag (shown by
    the jobs page). Returns (job id, task ids)."""
    with db.session() as s:
        job = Job(kind=kind, state="running", model_version_id=model_version_id, total=0, runner=runner,
                  params={"tag": params.to_json(), **({"paths": list(paths)} if paths else {})}, started_at=utcnow())
        s.add(job)
        s.flush()
        job_id = job.id
    return job_id, add_work(db, job_id, model_version_id, image_ids, task_size)


def add_work(db: Database, job_id: int, model_version_id: int | None, image_ids: Sequence[int],
             task_size: int) -> list[int]:
    """Give a job (running, or a scan that just ended) its images and tasks; closes it at once
    when there is nothing to do. Returns the task ids to send."""
    parts = list(chunks(image_ids, task_size))
    task_ids = leases.add_tasks(db, job_id, parts)
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            model_version_id=model_version_id, total=len(image_ids), state="running" if parts else "done",
            lease_until=None, finished_at=None if parts else utcnow(), started_at=func.coalesce(Job.started_at,
                                                                                                utcnow())))
    return task_ids


def note_offline(db: Database, job_id: int, offline: Sequence[tuple[str, int]]) -> None:
    """Keep on the job the folders its scan found empty and left alone (:mod:`tagger.missing`):
    the jobs page and ``tagscope jobs show`` say so, a scheduled run's only voice."""
    if not offline:
        return
    with db.session() as s:
        job = s.get(Job, job_id)
        job.params = {**(job.params or {}), "offline": [[folder, int(n)] for folder, n in offline]}


def queue_scan_job(s: Session, paths: Sequence[str], spec: str, params: JobParams, lease_s: float,
                   schedule_id: int | None = None, kind: str | None = None) -> int:
    """A queued job that still has to register its folders (a schedule's run, a job started from
    the web app): whoever runs its scan (:mod:`tagger.jobs.start`) decides what it tags."""
    job = Job(kind=kind or ("schedule" if schedule_id else "scan"), state="queued", schedule_id=schedule_id,
              runner=WORKERS,
              params={"tag": params.to_json(), "paths": list(paths), "spec": spec},
              lease_until=utcnow() + timedelta(seconds=lease_s))
    s.add(job)
    s.flush()
    return job.id


def load_job(db: Database, job_id: int) -> JobInfo:
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        mv = s.get(ModelVersion, job.model_version_id)
        return JobInfo(job.id, mv.id, mv.version, mv.spec, JobParams.from_json(job.params["tag"]))


def kind_of(db: Database, job_id: int) -> tuple[str, JobParams]:
    """A job's kind (``text``: :data:`tagger.params.TEXT_JOB`) and parameters."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        return job.kind, JobParams.from_json(job.params["tag"])


def is_running(db: Database, job_id: int) -> bool:
    with db.session() as s:
        return s.scalar(select(Job.state).where(Job.id == job_id)) == "running"


def unprocessed(db: Database, job_id: int, image_ids: Sequence[int]) -> list[int]:
    """Those of ``image_ids`` this job has not stored yet (a task run again after a kill skips
    what its first run committed)."""
    done: set[int] = set()
    with db.session() as s:
        for chunk in chunks(image_ids):
            done.update(s.scalars(select(Image.id).where(one_of(Image.id, chunk), Image.job_id == job_id,
                                                         Image.status.in_((TAGGED, DUPLICATE, FAILED)))))
    return [i for i in image_ids if i not in done]


def running_job_ids(db: Database) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(Job.id).where(Job.state == "running")))


def fail_job(db: Database, job_id: int, message: str) -> None:
    end_job(db, job_id, "failed", message)


def end_job(db: Database, job_id: int, state: str, message: str | None) -> bool:
    """Freeze an active job's figures and end it in ``state``; False when it had ended already."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state not in leases.ACTIVE_JOB_STATES:
            return False
        done, failed = progress(s, job)
        return bool(s.execute(update(Job).where(Job.id == job_id, Job.state.in_(leases.ACTIVE_JOB_STATES))
                              .values(state=state, error=message[:1000] if message else None, done=done,
                                      failed=failed, finished_at=utcnow(), lease_until=None)).rowcount)
