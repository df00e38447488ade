"""Celery tasks: thin wrappers around plain functions that take ids, not objects.

Every task may be delivered more than once (acks late, brokers' redelivery, the sweeper sending
again what a dead worker held): it runs only under its lease (:mod:`tagger.jobs.leases`) and its
writes replace, so running it twice has the effect of running it once.

A task loads what its work needs once, here (the database, the job row, the job's model on this
machine's device, checked against the job's version) and hands it to the pipeline
(:func:`tagger.tagging.tag_images`). The pipeline and the model are imported when a task runs,
not when one is sent: sending work (``tagscope jobs resume``) stays light.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from celery import Celery, shared_task

from core.db import Database
from core.errors import TagscopeError
from core.outage import through_outages
from core.settings import Settings, load_settings
from migrations import get_database
from tagger.jobs import leases, rows, schedules, sweeper
from tagger.jobs.close import close_job_if_complete
from tagger.jobs.start import start_queued_job
from tagger.jobs.task_names import SCAN_TASK, TAG_TASK, TICK_TASK
from tagger.params import TEXT_JOB

if TYPE_CHECKING:
    from tagger.tagging import Work

log = logging.getLogger(__name__)


def _settings(task) -> Settings:
    """This process's settings: a task Celery delivers has only its message (ids) and its app, so
    they ride on the app (set once by :func:`tagger.jobs.celery_app.celery_app`)."""
    return getattr(task.app.conf, "tagscope_settings", None) or load_settings()


def load_work(settings: Settings, db: Database, job_id: int) -> Work:
    """What the pipeline needs for a job: its row and its model version, loaded on THIS machine's
    device. Refuses a model whose version is not the job's (another file at the same path,
    another release of the bundled model): the job fails with a message saying so."""
    from indexer.store import StoreVersion
    from mkt.runtime.factory import model_on, runtime_of
    from tagger.tagging import Work

    job = rows.load_job(db, job_id)
    model = model_on(job.spec, settings.resolved_device(), runtime=runtime_of(job.version))
    if model.version != job.version:
        message = (f"job {job.id} was queued for model {job.spec} version {job.version}, but this worker "
                   f"loads version {model.version} from that spec: give every worker the same model "
                   "file, then queue the job again")
        rows.fail_job(db, job.id, message)
        raise TagscopeError(message)
    return Work(settings, db, job, model, StoreVersion(job.model_version_id, job.version, model.embed_dim),
                partial(rows.is_running, db, job.id))


def run_task(settings: Settings, job_id: int, task_id: int, progress=None,
             role: str = "worker") -> dict[str, int] | None:
    """One task of a job under its lease: tag the images its first runs did not store, mark it
    done, close the job if it was the last (``closed``: 1 when this call closed it, which brought
    this machine's index copy up to date, reported as ``role``). None when the task was not this
    worker's to run."""
    db = get_database(settings.db_url)
    what = f"job {job_id} task {task_id}"
    # Each step runs again once the database answers when an outage stops it (core.outage): a
    # database restart costs the task a pause, not its lease.
    image_ids = through_outages(db, lambda: leases.claim(db, task_id, settings.task_lease), what)
    if image_ids is None:
        log.info("%s: done, leased elsewhere, or the job is not running: skipped", what)
        return None
    with leases.heartbeat(lambda: leases.renew(db, task_id, settings.task_lease), settings.task_lease,
                          f"task {task_id}"):
        done, failed, complete = through_outages(db, lambda: _tag(settings, db, job_id, image_ids, progress), what)
    closed = False
    if complete:  # not when the job was cancelled meanwhile: resume sends the task again
        through_outages(db, lambda: leases.finish(db, task_id), what)
        closed = through_outages(db, lambda: close_job_if_complete(settings, db, job_id, role), what)
    return {"done": done, "failed": failed, "closed": int(bool(closed))}


def _tag(settings: Settings, db: Database, job_id: int, image_ids: list[int], progress) -> tuple[int, int, bool]:
    """Tag what of ``image_ids`` is not stored yet: (done, failed, complete). Run again after a
    partial run (an outage), it takes up where the last one stopped."""
    todo = rows.unprocessed(db, job_id, image_ids)
    if not todo:
        return 0, 0, True
    kind, params = rows.kind_of(db, job_id)
    if kind == TEXT_JOB:  # read text only: no model
        from tagger.ocr_stage import read_texts

        return read_texts(settings, db, job_id, todo, params.max_pixels, partial(rows.is_running, db, job_id),
                          progress)
    from tagger.tagging import tag_images

    return tag_images(load_work(settings, db, job_id), todo, progress=progress)


@shared_task(name=TAG_TASK, bind=True)
def tag_images_task(self, job_id: int, task_id: int) -> dict[str, int] | None:
    """Tag one task's images for a job with THIS worker's settings (device, batch size, decode
    workers); the model stays loaded in the worker process between tasks."""
    with sweeper.busy():
        out = run_task(_settings(self), job_id, task_id)
    if out is not None:
        log.info("job %s task %s: tagged %d, failed %d", job_id, task_id, out["done"], out["failed"])
    return out


@shared_task(name=SCAN_TASK, bind=True)
def start_job_task(self, job_id: int) -> int:
    """Register a queued job's folders and send its tasks (a schedule's run)."""
    with sweeper.busy():
        sends = start_queued_job(_settings(self), job_id)
    for sent_job, task_id in sends or []:  # its text job's tasks too (tagger.jobs.start)
        send_tag_task(self.app, sent_job, task_id)
    return len(sends or [])


@shared_task(name=TICK_TASK, bind=True)
def tick_task(self) -> list[int]:
    """Celery beat's tick: queue the due schedules' jobs and send their scans."""
    settings = _settings(self)
    job_ids = schedules.start_due(get_database(settings.db_url), settings.task_lease)
    for job_id in job_ids:
        send_scan_task(self.app, job_id)
    return job_ids


def send_tag_task(app: Celery, job_id: int, task_id: int) -> None:
    """Send one task of a job through ``app`` (run here and now when it has no broker)."""
    app.tasks[TAG_TASK].apply_async((job_id, task_id))


def send_scan_task(app: Celery, job_id: int) -> None:
    """Send the scan of a queued job through ``app``."""
    app.tasks[SCAN_TASK].apply_async((job_id,))
