"""A whole tagging job, as ``tagscope tag`` runs it: register, split into tasks, run or queue
them, wait, index."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from sqlalchemy import func, select
from tqdm import tqdm

from core.db import Database
from core.errors import TagscopeError
from core.outage import through_outages
from core.schema import DUPLICATE, FAILED, TAGGED, Image, Job
from core.settings import Settings
from core.sql_in import chunks, one_of
from indexer.store import StoreVersion
from indexer.sync import sync_index
from migrations import get_database
from mkt.runtime.factory import model_on
from tagger.jobs import rows
from tagger.jobs.celery_app import celery_app
from tagger.jobs.control import interrupt_dead_in_process_jobs
from tagger.jobs.start import start_job
from tagger.jobs.tasks import run_task, send_tag_task
from tagger.ocr_stage import job_ocr
from tagger.progress import progress

Echo = Callable[[str], None]


def run_job(settings: Settings, paths: Sequence[str], *, retry_failed: bool = False, retag: bool = False,
            empty_ok: bool = False, wait: bool = True, echo: Echo = lambda _m: None,
            poll_seconds: float = 0.5) -> str:
    """Tag everything under ``paths`` that needs it; returns a one-paragraph summary. ``empty_ok``:
    a folder found empty marks its registered files missing (else: offline, :mod:`tagger.missing`)."""
    t0 = time.time()
    app = celery_app(settings)
    in_process = bool(app.conf.task_always_eager)
    # In-process, this process tags: the model loads where it will run. With a broker, workers tag
    # on their own devices and this process only needs the model's version id: the CPU will do.
    # Either way a model error comes before any write.
    model = model_on(settings.tagging_model, settings.resolved_device() if in_process else "cpu",
                     runtime=job_runtime(settings, in_process))
    db = get_database(settings.db_url)
    if in_process:
        interrupt_dead_in_process_jobs(db, settings.task_lease)
    started = start_job(settings, db, model, paths, rows.IN_PROCESS if in_process else rows.WORKERS,
                        retry_failed=retry_failed, retag=retag, empty_ok=empty_ok, ocr=job_ocr(settings, echo),
                        echo=echo)
    job_id, task_ids = started.job_id, started.task_ids
    synced = False  # this machine's index copy brought up to date by the close, in this process
    with _progress_bar(db, job_id) as bar:
        if in_process:
            synced = _run_here(settings, job_id, task_ids, bar)
        else:
            for task_id in task_ids:
                send_tag_task(app, job_id, task_id)
            echo(f"queued {len(task_ids)} task(s) on {settings.broker_url}; workers: `tagscope worker`")
            if not wait:
                return (f"job {job_id} queued: {_total(db, job_id)} images in "
                        f"{len(task_ids)} tasks (see `tagscope jobs show {job_id}`)"
                        + _text_job(settings, db, app, started.text_job, wait=False, echo=echo))
            wait_for_job(db, job_id, bar, echo, poll_seconds)
    if settings.keep_index and not synced:
        version = StoreVersion(started.model_version_id, model.version, model.embed_dim)
        through_outages(db, lambda: sync_index(settings, db, version, role="cli"), f"indexing job {job_id}")
    text = _text_job(settings, db, app, started.text_job, wait=True, echo=echo, poll_seconds=poll_seconds)
    seconds = time.time() - t0
    return through_outages(db, lambda: _summary(db, job_id, started.found.image_ids, seconds), f"job {job_id}") + text


def _text_job(settings: Settings, db: Database, app, text_job: tuple[int, list[int]] | None, *, wait: bool,
              echo: Echo, poll_seconds: float = 0.5) -> str:
    """Run or send the text job of the tagged photos still to be read (:mod:`tagger.jobs.start`);
    a line for the summary ("" when there is none)."""
    if text_job is None:
        return ""
    job_id, task_ids = text_job
    in_process = bool(app.conf.task_always_eager)
    if not in_process:
        for task_id in task_ids:
            send_tag_task(app, job_id, task_id)
        if not wait:
            return f"\njob {job_id} queued: the text of {_total(db, job_id)} photos tagged before, to read"
    with _progress_bar(db, job_id, "reading text") as bar:
        if in_process:
            _run_here(settings, job_id, task_ids, bar)
        else:
            wait_for_job(db, job_id, bar, echo, poll_seconds)
    with db.session() as s:
        done, failed = progress(s, s.get(Job, job_id))
    return f"\njob {job_id}: read the text of {done + failed} photos tagged before ({failed} failed)"


def _run_here(settings: Settings, job_id: int, task_ids: Sequence[int], bar: tqdm) -> bool:
    """Run a job's tasks in this process (no broker), the progress bar following each batch. True
    when the last of them closed the job, which brought this machine's index copy up to date."""
    closed = False
    for task_id in task_ids:
        out = run_task(settings, job_id, task_id, lambda ok, failed: bar.update(ok + failed), role="cli")
        closed = closed or bool(out and out["closed"])
    return closed


def _total(db: Database, job_id: int) -> int:
    with db.session() as s:
        return s.get(Job, job_id).total


def _progress_bar(db: Database, job_id: int, what: str = "tagging") -> tqdm:
    total = _total(db, job_id)
    return tqdm(total=total, unit="img", desc=f"{what} (job {job_id})", file=sys.stderr,
                disable=not sys.stderr.isatty() or not total, dynamic_ncols=True, smoothing=0.1)


def wait_for_job(db: Database, job_id: int, bar: tqdm | None = None, echo: Echo = lambda _m: None,
                 poll_seconds: float = 0.5) -> str:
    """Wait until the job ends (done, failed, cancelled), following its progress; its state."""
    last_progress, last_seen, hinted = time.time(), 0, False

    def look() -> tuple[int, int, str, str | None]:
        with db.session() as s:
            job = s.get(Job, job_id)
            done, failed = progress(s, job)
            return done, failed, job.state, job.error

    while True:
        # The workers ride out a database restart (core.outage): so does the command following them.
        done, failed, state, error = through_outages(db, look, f"following job {job_id}")
        if state == "failed":
            raise TagscopeError(f"job {job_id} failed: {error}")
        if done + failed > last_seen:
            if bar is not None:
                bar.update(done + failed - last_seen)
            last_seen, last_progress = done + failed, time.time()
        if state in ("done", "cancelled"):
            return state
        if not hinted and time.time() - last_progress > 30:
            echo("no progress for 30 s: is a worker running? start one with `tagscope worker`")
            hinted = True
        time.sleep(poll_seconds)


def _summary(db: Database, job_id: int, image_ids: Sequence[int], seconds: float) -> str:
    with db.session() as s:
        job = s.get(Job, job_id)
        done, failed = progress(s, job)
        counts = {TAGGED: 0, FAILED: 0, DUPLICATE: 0, "pending": 0}
        failures = []
        for ids in chunks(image_ids):  # counted by the database: no row per image here
            chunk = one_of(Image.id, ids)
            for st, n in s.execute(select(Image.status, func.count()).where(chunk).group_by(Image.status)):
                counts[st] = counts.get(st, 0) + n
            if len(failures) < 10:
                failures += [f"  failed: {path}: {err}" for path, err in s.execute(
                    select(Image.path, Image.error).where(chunk, Image.status == FAILED)
                    .order_by(Image.id).limit(10 - len(failures)))]
    rate = done / seconds if seconds > 0 else 0.0
    lines = [f"job {job_id}: {done + failed} processed this run ({failed} failed) in {seconds:.1f}s "
             f"({rate:.1f} img/s); collection under these paths: {counts[TAGGED]} tagged, "
             f"{counts[FAILED]} failed, {counts[DUPLICATE]} duplicates, {counts['pending']} pending"]
    lines += failures
    if counts[FAILED] > len(failures):
        lines.append(f"  ... {counts[FAILED] - len(failures)} more failures: `tagscope status`")
    return "\n".join(lines)


def job_runtime(settings: Settings, in_process: bool) -> str:
    """The runtime a job's model version is made for (:mod:`mkt.runtime`): in this process, or
    with the embedded broker (the workers are this machine), ``auto`` resolved for this machine's
    device; through a real broker the workers' devices are unknown here, so ``auto`` means PyTorch
    unless ``TAGSCOPE_DEVICE=cpu`` says the workers tag on CPUs. Every worker runs the job on
    the runtime it was queued for: one version per job."""
    if settings.runtime != "auto":
        return settings.runtime
    here = in_process or settings.broker_url == "embedded"
    device = settings.resolved_device() if here else (settings.device or "unknown")
    return "auto" if device.startswith("cpu") else "torch"
