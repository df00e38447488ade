"""Starting a job: seed the vocabulary, register the folders, pick what needs tagging, split it
into tasks. ``tagscope tag`` does it in its own process (:func:`start_job`); a schedule's queued
job does it on a worker (``tagscope.start_job``: :func:`start_queued_job`), under a lease like any
task, so a scan whose worker died is sent again by a sweeper (:mod:`tagger.jobs.sweeper`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.db import Database
from core.modelspec import parse_spec
from core.settings import Settings
from migrations import get_database
from mkt.runtime.factory import model_on
from mkt.tagmodel import TagModel
from tagger.jobs import leases, rows
from tagger.media_backfill import catch_up
from tagger.missing import offline_message
from tagger.params import JobParams
from tagger.scan import ScanResult, images_to_tag, scan
from tagger.vocabulary import default_label_names, seed_labels, vocabulary_size

Echo = Callable[[str], None]


@dataclass
class Started:
    """A job with its work split: the job id, the task ids to send, and what the scan found."""

    job_id: int
    task_ids: list[int]
    found: ScanResult
    model: TagModel
    model_version_id: int


def seed_vocabulary(db: Database, model: TagModel, echo: Echo) -> None:
    """First run: start from the model's own vocabulary (bundles carry one) or the default list."""
    if vocabulary_size(db) == 0:
        added = seed_labels(db, model.labels or default_label_names(), source="model" if model.labels else "default")
        echo(f"vocabulary: {len(added)} labels from the {'model' if model.labels else 'default list'} "
             "(`tagscope labels add` for more)")


def report_scan(found: ScanResult, echo: Echo) -> None:
    skipped = f" ({found.skipped} other files skipped: not photos, RAW or video)" if found.skipped else ""
    echo(f"found {len(found.image_ids)} files: {found.new} new, {found.changed} changed, "
         f"{found.unchanged} unchanged{skipped}")
    if found.returned:
        echo(f"{found.returned} missing files are back unchanged: their tags and embeddings restored")
    if found.missing:
        echo(f"{len(found.missing)} registered files are no longer there: marked missing")
    for folder, registered in found.offline:
        echo("warning: " + offline_message(folder, registered))


def prepare(db: Database, model: TagModel, paths: Sequence[str], *, retry_failed: bool = False,
            retag: bool = False, empty_ok: bool = False,
            echo: Echo = lambda _m: None) -> tuple[int, ScanResult, list[int]]:
    """Seed the vocabulary, record the model version, register ``paths``: (model version id, the
    scan's result, the ids of images that need tagging with this version). ``empty_ok``: a
    folder found empty marks its files missing (:mod:`tagger.missing`)."""
    seed_vocabulary(db, model, echo)
    mv_id = rows.ensure_model_version(db, model)
    found = scan(db, list(paths), empty_ok=empty_ok)
    report_scan(found, echo)
    catch_up(db, found.image_ids, echo)  # files tagged before their shot's facts were stored
    return mv_id, found, images_to_tag(db, found.image_ids, mv_id, retry_failed=retry_failed, retag=retag)


def start_job(settings: Settings, db: Database, model: TagModel, paths: Sequence[str], runner: str, *,
              retry_failed: bool = False, retag: bool = False, empty_ok: bool = False,
              echo: Echo = lambda _m: None) -> Started:
    """``tagscope tag``: prepare, then a running job with its tasks (none sent yet)."""
    mv_id, found, todo = prepare(db, model, paths, retry_failed=retry_failed, retag=retag, empty_ok=empty_ok,
                                 echo=echo)
    job_id, task_ids = rows.create_job(db, mv_id, todo, JobParams.from_settings(settings),
                                       settings.task_size, runner, paths=[str(Path(p).resolve()) for p in paths])
    rows.note_offline(db, job_id, found.offline)
    return Started(job_id, task_ids, found, model, mv_id)


def start_queued_job(settings: Settings, job_id: int) -> list[int] | None:
    """The scan of a queued job (a schedule's run), on this worker under a lease: the task ids
    to send, or None when the job is not this worker's to scan (done, or leased elsewhere)."""
    db = get_database(settings.db_url)
    params = leases.claim_scan(db, job_id, settings.task_lease)
    if params is None:
        return None
    with leases.heartbeat(lambda: leases.renew_scan(db, job_id, settings.task_lease), settings.task_lease,
                          f"scan of job {job_id}"):
        try:
            model = model_on(parse_spec(params["spec"]), settings.resolved_device(), runtime=settings.runtime)
        except Exception as exc:  # noqa: BLE001 - a model that cannot load fails the job, with why
            rows.fail_job(db, job_id, f"cannot load model {params['spec']}: {exc}")
            raise
        mv_id, found, todo = prepare(db, model, params["paths"])
        rows.note_offline(db, job_id, found.offline)
        return rows.add_work(db, job_id, mv_id, todo, settings.task_size)
