"""Job control: what ``tagscope jobs`` and ``/api/jobs`` show and do (list, show, cancel,
resume, retry failed images)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from core.bounds import MAX_LIMIT, whole_number
from core.db import Database
from core.errors import TagscopeError
from core.schema import FAILED, Image, Job, JobTask, ModelVersion, as_utc, iso_utc, utcnow
from tagger.jobs import leases, rows
from tagger.missing import offline_message
from tagger.params import JobParams
from tagger.progress import progress

FINAL_STATES = ("done", "failed", "cancelled")


class NoSuchJob(TagscopeError):
    """A job id that does not exist (the API answers 404)."""


def describe(s, job: Job) -> dict[str, Any]:
    """One job as the CLI and the API show it: figures counted from its images, rate and ETA."""
    done, failed = progress(s, job)
    tasks = dict(s.execute(select(JobTask.state, func.count()).where(JobTask.job_id == job.id)
                           .group_by(JobTask.state)).all())
    workers = sorted(set(s.scalars(select(JobTask.worker).where(JobTask.job_id == job.id,
                                                                JobTask.state == leases.RUNNING,
                                                                JobTask.lease_until >= utcnow()))))
    end = as_utc(job.finished_at) or utcnow()
    elapsed = (end - as_utc(job.started_at)).total_seconds() if job.started_at else 0.0
    rate = (done + failed) / elapsed if elapsed > 0 else 0.0
    remaining = max(job.total - done - failed, 0)
    version = s.get(ModelVersion, job.model_version_id) if job.model_version_id else None
    spec = (job.params or {}).get("spec")  # a queued job's, before its scan records the version
    return {"id": job.id, "kind": job.kind, "state": job.state, "runner": job.runner, "schedule_id": job.schedule_id,
            "folders": list((job.params or {}).get("paths") or []),
            "model": {"spec": version.spec, "version": version.version} if version is not None else
            {"spec": spec, "version": None} if spec else None,
            "total": job.total, "done": done, "failed": failed, "remaining": remaining,
            "rate_img_s": round(rate, 2), "eta_s": round(remaining / rate, 1) if rate > 0 and
            job.state == "running" else None,
            "tasks": {state: int(tasks.get(state, 0)) for state in (leases.QUEUED, leases.RUNNING, leases.DONE)},
            "workers": workers, "error": job.error,
            "warnings": [offline_message(folder, n) for folder, n in (job.params or {}).get("offline", [])],
            "created_at": iso_utc(job.created_at),
            "started_at": iso_utc(job.started_at), "finished_at": iso_utc(job.finished_at)}


def list_jobs(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` jobs (1 to ``MAX_LIMIT``: ``tagscope jobs --limit``, ``GET /api/jobs?limit=``)."""
    limit = whole_number(limit, "limit", 1, MAX_LIMIT)
    with db.session() as s:
        return [describe(s, job) for job in s.scalars(select(Job).order_by(Job.id.desc()).limit(limit))]


def show_job(db: Database, job_id: int) -> dict[str, Any]:
    with db.session() as s:
        return describe(s, _get(s, job_id))


def cancel_job(db: Database, job_id: int) -> dict[str, Any]:
    """Stop an active job: running tasks stop after their current batch, queued ones do nothing
    when they arrive. What it stored stays; ``resume`` goes on from there."""
    with db.session() as s:
        job = _get(s, job_id)
        if job.state in FINAL_STATES:
            raise TagscopeError(f"job {job_id} is {job.state} already: nothing to cancel")
    rows.end_job(db, job_id, "cancelled", "cancelled by the user")
    return show_job(db, job_id)


def resume_job(db: Database, job_id: int) -> tuple[str, list[int]]:
    """Make a cancelled, failed or stalled job run again: ("tasks", ids of the tasks to send) or
    ("scan", [job id]) for a job that never finished registering its folders."""
    with db.session() as s:
        job = _get(s, job_id)
        if job.state == "done":
            raise TagscopeError(f"job {job_id} is done: to tag failed images again use "
                                f"`tagscope jobs retry {job_id}`")
        has_tasks = bool(s.scalar(select(func.count()).select_from(JobTask).where(JobTask.job_id == job_id)))
        state = "running" if has_tasks else "queued"
        s.execute(update(Job).where(Job.id == job_id).values(state=state, error=None, finished_at=None,
                                                             lease_until=utcnow() if not has_tasks else None))
    if not has_tasks:
        return "scan", [job_id]
    return "tasks", leases.requeue_unfinished(db, job_id)


def retry_job(db: Database, job_id: int, task_size: int, runner: str) -> tuple[int, list[int]]:
    """A new job tagging again the images this job recorded as failed: (job id, task ids)."""
    with db.session() as s:
        job = _get(s, job_id)
        ids = s.scalars(select(Image.id).where(Image.job_id == job_id, Image.status == FAILED)
                        .order_by(Image.id)).all()
        params, mv_id = JobParams.from_json(job.params["tag"]), job.model_version_id
    if not ids:
        raise TagscopeError(f"job {job_id} has no failed images")
    return rows.create_job(db, mv_id, ids, params, task_size, runner, kind="retry")


def interrupt_dead_in_process_jobs(db: Database, lease_s: float) -> list[int]:
    """In-process jobs still 'running' though no task holds a live lease (the command running
    them was killed) become cancelled, so that `tagscope jobs resume` can finish them; a new
    `tagscope tag` picks their images anyway."""
    now = utcnow()
    recent = now - timedelta(seconds=lease_s)
    with db.session() as s:
        candidates = s.scalars(select(Job.id).where(Job.state == "running", Job.runner == rows.IN_PROCESS,
                                                    Job.started_at < recent)).all()
        # Alive: a task holds a live lease, or one started or ended within a lease (between tasks).
        live = set(s.scalars(select(JobTask.job_id).where(
            JobTask.job_id.in_(candidates),
            ((JobTask.state == leases.RUNNING) & (JobTask.lease_until >= now)) | (JobTask.started_at >= recent)
            | (JobTask.finished_at >= recent))))
    dead = [i for i in candidates if i not in live]
    for job_id in dead:
        rows.end_job(db, job_id, "cancelled", "interrupted: the command running it stopped "
                                              f"(`tagscope jobs resume {job_id}` goes on)")
    return dead


def _get(s, job_id: int) -> Job:
    job = s.get(Job, job_id)
    if job is None:
        raise NoSuchJob(f"no job {job_id}: see `tagscope jobs`")
    return job


def send(settings, job_id: int, kind: str, ids: list[int]) -> None:
    """Send a resumed or retried job's work: to the workers, or run it here without a broker."""
    from tagger.jobs.celery_app import celery_app
    from tagger.jobs.tasks import send_scan_task, send_tag_task

    app = celery_app(settings)
    if kind == "scan":
        send_scan_task(app, job_id)
        return
    for task_id in ids:
        send_tag_task(app, job_id, task_id)
