"""Closing a job: the last step of every job, taken by whoever sees all its tasks done first (the
worker that finished the last task, a sweeper when that worker died in between, or ``tagscope
tag`` running its tasks itself). Before the job closes, its version's rules are computed
(:func:`tagger.decisions.ensure_decided`, with the model as that process loads it, kept per
process): a new version is decided before it is switched in and served, and an active one whose
collection grew or shrank by more than a tenth gets its collection rules again."""

from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import Database
from core.schema import Job, JobTask, ModelVersion, utcnow
from core.settings import Settings
from indexer.store import StoreVersion
from indexer.sync import sync_index
from tagger.decisions import ensure_decided
from tagger.jobs import leases
from tagger.params import TEXT_JOB
from tagger.progress import progress
from tagger.versions import switch_in

log = logging.getLogger(__name__)


def close_job_if_complete(settings: Settings, db: Database, job_id: int, role: str = "worker") -> bool:
    """Close a running job whose tasks are all done: compute its version's missing or stale rules,
    bring this machine's index copy up to date when it keeps one (``keep_index``), then in one
    transaction freeze the job's figures, mark it done and make its model version the one search
    serves once it covers the collection
    (:func:`tagger.versions.switch_in`: a database fact, the same whoever closes, a worker that
    keeps no index too). True for the one caller that closed it. ``role``: who this copy's reader is
    (:func:`indexer.log.report`): ``cli`` for a ``tagscope tag`` that runs its tasks itself."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or not _complete(s, job):
            return False
        if job.kind == TEXT_JOB:  # text read, nothing embedded: no rules, no index, no version to switch
            return _close(db, job_id, None)
        mv = StoreVersion.of(s.get(ModelVersion, job.model_version_id))
    ensure_decided(settings, mv.id, recheck_s=0)  # before the switch: its tags are never served undecided
    if settings.keep_index:  # first: this machine's readers find the new version's copy current at the switch
        try:
            sync_index(settings, db, mv, role=role)
        except OSError as exc:  # this copy catches up later (the sweeper, the next sync); the job closes now
            log.warning("job %d: this machine's index copy could not be brought up to date: %s", job_id, exc)
    return _close(db, job_id, mv.id)


def _close(db: Database, job_id: int, mv_id: int | None) -> bool:
    """Freeze the complete job's figures and mark it done, switching in its model version (a
    tagging job's) in the same transaction; True for the one caller that closed it."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or not _complete(s, job):
            return False
        done, failed = progress(s, job)
        closed = s.execute(update(Job).where(Job.id == job_id, Job.state == "running")
                           .values(state="done", done=done, failed=failed, finished_at=utcnow())).rowcount
        if closed and mv_id is not None:
            switch_in(s, mv_id)
    return bool(closed)


def _complete(s: Session, job: Job) -> bool:
    """The job runs and every one of its tasks is done."""
    return job.state == "running" and not s.scalar(
        select(func.count()).select_from(JobTask).where(JobTask.job_id == job.id, JobTask.state != leases.DONE))
