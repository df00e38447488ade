"""Celery tasks: thin wrappers around plain functions that take ids, not objects.

Every task may be delivered more than once (acks late, brokers' redelivery, the sweeper sending
again what a dead worker held): it runs only under its lease (:mod:`tagger.jobs.leases`) and its
writes replace, so running it twice has the effect of running it once.
"""

from __future__ import annotations

import logging

from celery import shared_task

from core.db import get_database
from core.settings import Settings, load_settings
from tagger.jobs import leases, schedules, sweeper
from tagger.jobs import rows as jobs
from tagger.jobs.start import run_scan
from tagger.tagging import tag_images

log = logging.getLogger(__name__)


def _settings(task) -> Settings:
    return getattr(task.app.conf, "tagscope_settings", None) or load_settings()


def run_task(settings: Settings, job_id: int, task_id: int, progress=None) -> dict[str, int] | None:
    """One task of a job under its lease: tag the images its first runs did not store, mark it
    done, close the job if it was the last. None when the task was not this worker's to run."""
    db = get_database(settings.db_url)
    image_ids = leases.claim(db, task_id, settings.task_lease)
    if image_ids is None:
        log.info("job %s task %s: done, leased elsewhere, or the job is not running: skipped", job_id, task_id)
        return None
    with leases.heartbeat(lambda: leases.renew(db, task_id, settings.task_lease), settings.task_lease,
                          f"task {task_id}"):
        done, failed, complete = tag_images(settings, job_id, jobs.unprocessed(db, job_id, image_ids),
                                            progress=progress)
    if complete:  # not when the job was cancelled meanwhile: resume sends the task again
        leases.finish(db, task_id)
        jobs.close_if_complete(settings, db, job_id)
    return {"done": done, "failed": failed}


@shared_task(name=sweeper.TAG_TASK, bind=True)
def tag_images_task(self, job_id: int, task_id: int) -> dict[str, int] | None:
    """Tag one task's images for a job with THIS worker's settings (device, batch size, decode
    workers); the model stays loaded in the worker process between tasks."""
    with sweeper.busy():
        out = run_task(_settings(self), job_id, task_id, getattr(self.app.conf, "tagscope_progress", None))
    if out is not None:
        log.info("job %s task %s: tagged %d, failed %d", job_id, task_id, out["done"], out["failed"])
    return out


@shared_task(name=sweeper.SCAN_TASK, bind=True)
def start_job_task(self, job_id: int) -> int:
    """Register a queued job's folders and send its tasks (a schedule's run)."""
    with sweeper.busy():
        task_ids = run_scan(_settings(self), job_id)
    for task_id in task_ids or []:
        tag_images_task.apply_async((job_id, task_id))
    return len(task_ids or [])


@shared_task(name="tagscope.tick", bind=True)
def tick_task(self) -> list[int]:
    """Celery beat's tick: queue the due schedules' jobs and send their scans."""
    settings = _settings(self)
    job_ids = schedules.start_due(get_database(settings.db_url), settings.task_lease)
    for job_id in job_ids:
        start_job_task.apply_async((job_id,))
    return job_ids
