"""A whole tagging job, as ``tagscope tag`` runs it: register, split into tasks, wait, index."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from sqlalchemy import select
from tqdm import tqdm

from core.db import DUPLICATE, FAILED, TAGGED, Database, Image, Job, get_database
from core.errors import TagscopeError
from core.settings import Settings
from indexer.sync import sync_index
from mkt.factory import get_model
from mkt.tagmodel import TagModel
from tagger.celery_app import create_celery_app
from tagger.jobs import JobParams, create_tag_job, ensure_model_version
from tagger.scan import ScanResult, images_to_tag, scan
from tagger.tasks import tag_images_task
from tagger.vocabulary import default_label_names, seed_labels, vocabulary_size

Echo = Callable[[str], None]


def run_tag_job(settings: Settings, paths: Sequence[str], *, retry_failed: bool = False, retag: bool = False,
                wait: bool = True, echo: Echo = lambda _m: None, poll_seconds: float = 0.5) -> str:
    """Tag everything under ``paths`` that needs it; returns a one-paragraph summary."""
    t0 = time.time()
    app = create_celery_app(settings)
    in_process = bool(app.conf.task_always_eager)
    # In-process, this process tags: the model loads where it will run. With a broker, workers tag
    # on their own devices and this process only needs the model's version id: the CPU will do.
    # Either way a model error comes before any write.
    model = get_model(settings.tagging_model, settings.resolved_device() if in_process else "cpu")
    db = get_database(settings.db_url)
    _seed_vocabulary(db, model, echo)
    mv_id = ensure_model_version(db, model)
    found = scan(db, paths)
    _report_scan(found, echo)
    todo = images_to_tag(db, found.image_ids, mv_id, retry_failed=retry_failed, retag=retag)
    job_id = create_tag_job(db, mv_id, todo, JobParams.from_settings(settings))
    chunks = [todo[i:i + settings.task_size] for i in range(0, len(todo), settings.task_size)]
    bar = tqdm(total=len(todo), unit="img", desc=f"tagging (job {job_id})", file=sys.stderr,
               disable=not sys.stderr.isatty() or not todo, dynamic_ncols=True, smoothing=0.1)
    with bar:
        if in_process:
            app.conf.tagscope_progress = lambda ok, failed: bar.update(ok + failed)
            for chunk in chunks:
                tag_images_task.delay(job_id, chunk)
        else:
            for chunk in chunks:
                tag_images_task.apply_async((job_id, chunk))
            echo(f"queued {len(chunks)} task(s) on {settings.broker_url}; workers: `tagscope worker`")
            if not wait:
                return f"job {job_id} queued: {len(todo)} images in {len(chunks)} tasks (see `tagscope status`)"
            _wait_for(db, job_id, bar, echo, poll_seconds)
    sync_index(settings, model.version, model.embed_dim)
    return _summary(db, job_id, found.image_ids, time.time() - t0)


def _seed_vocabulary(db: Database, model: TagModel, echo: Echo) -> None:
    """First run: start from the model's own vocabulary (bundles carry one) or the default list."""
    if vocabulary_size(db) == 0:
        added = seed_labels(db, model.labels or default_label_names(), source="model" if model.labels else "default")
        echo(f"vocabulary: {len(added)} labels from the {'model' if model.labels else 'default list'} "
             "(`tagscope labels add` for more)")


def _report_scan(found: ScanResult, echo: Echo) -> None:
    echo(f"found {len(found.image_ids)} files: {found.new} new, {found.changed} changed, "
         f"{found.unchanged} unchanged" + (f" ({found.skipped} non-image files skipped)" if found.skipped else ""))
    if found.missing:
        echo(f"{len(found.missing)} registered files are no longer there: marked missing")


def _wait_for(db: Database, job_id: int, bar: tqdm, echo: Echo, poll_seconds: float) -> None:
    last_progress, last_seen, hinted = time.time(), 0, False
    while True:
        with db.session() as s:
            job = s.get(Job, job_id)
            seen, total, state, error = job.done + job.failed, job.total, job.state, job.error
        if state == "failed":
            raise TagscopeError(f"job {job_id} failed: {error}")
        if seen > last_seen:
            bar.update(seen - last_seen)
            last_seen, last_progress = seen, time.time()
        if state == "done" or seen >= total:
            return
        if not hinted and time.time() - last_progress > 30:
            echo("no progress for 30 s: is a worker running? start one with `tagscope worker`")
            hinted = True
        time.sleep(poll_seconds)


def _summary(db: Database, job_id: int, image_ids: Sequence[int], seconds: float) -> str:
    with db.session() as s:
        job = s.get(Job, job_id)
        counts = {TAGGED: 0, FAILED: 0, DUPLICATE: 0, "pending": 0}
        failures = []
        for start in range(0, len(image_ids), 5000):
            rows = s.execute(select(Image.status, Image.path, Image.error)
                             .where(Image.id.in_(list(image_ids[start:start + 5000])))).all()
            for st, path, err in rows:
                counts[st] = counts.get(st, 0) + 1
                if st == FAILED and len(failures) < 10:
                    failures.append(f"  failed: {path}: {err}")
    rate = job.done / seconds if seconds > 0 else 0.0
    lines = [f"job {job_id}: {job.done + job.failed} processed this run ({job.failed} failed) in {seconds:.1f}s "
             f"({rate:.1f} img/s); collection under these paths: {counts[TAGGED]} tagged, "
             f"{counts[FAILED]} failed, {counts[DUPLICATE]} duplicates, {counts['pending']} pending"]
    lines += failures
    if counts[FAILED] > len(failures):
        lines.append(f"  ... {counts[FAILED] - len(failures)} more failures: `tagscope status`")
    return "\n".join(lines)
