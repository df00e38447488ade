"""Closing a job: the last step of every job, taken by whoever sees all its tasks done first (the
worker that finished the last task, or a sweeper when that worker died in between)."""

from __future__ import annotations

from sqlalchemy import func, select, update

from core.db import Database, Job, JobTask, ModelVersion, utcnow
from core.settings import Settings
from indexer.store import StoreVersion
from indexer.sync import sync_index
from tagger.jobs import leases
from tagger.jobs.rows import progress
from tagger.versions import switch_if_covering


def close_job_if_complete(settings: Settings, db: Database, job_id: int) -> bool:
    """Close a running job whose tasks are all done: freeze its figures, mark it done, bring its
    index up to date, and make its model version the one search serves once it covers the
    collection. True for the one caller that closed it."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state != "running" or s.scalar(
                select(func.count()).select_from(JobTask).where(JobTask.job_id == job_id,
                                                                 JobTask.state != leases.DONE)):
            return False
        done, failed = progress(s, job)
        closed = s.execute(update(Job).where(Job.id == job_id, Job.state == "running")
                           .values(state="done", done=done, failed=failed, finished_at=utcnow())).rowcount
        mv = StoreVersion.of(s.get(ModelVersion, job.model_version_id))
    if closed and settings.keep_index:
        sync_index(settings, db, mv, role="worker")
        switch_if_covering(db, mv.id)
    return bool(closed)
