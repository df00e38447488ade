"""Starting a job: seed the vocabulary, register the folders, pick what needs tagging, split it
into tasks. ``tagscope tag`` does it in its own process (:func:`start_job`); a schedule's queued
job does it on a worker (``tagscope.start_job``: :func:`start_queued_job`), under a lease like any
task, so a scan whose worker died is sent again by a sweeper (:mod:`tagger.jobs.sweeper`).

With OCR on (the job's ``ocr``), the tagged photos under the paths that the tagging leaves alone
and that have no reading of their file's content (OCR turned on over a tagged collection, an
older release) get a text job of their own (:data:`tagger.params.TEXT_JOB`): read, not embedded
again (:func:`start_text_job`), its tasks sent beside the tagging job's.
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
from tagger.params import TEXT_JOB, JobParams
from tagger.scan import ScanResult, images_to_tag, scan
from tagger.text_store import to_read
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
    text_job: tuple[int, list[int]] | None = None  # (job id, task ids) of the text job, when there is one


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
              retry_failed: bool = False, retag: bool = False, empty_ok: bool = False, ocr: bool | None = None,
              echo: Echo = lambda _m: None) -> Started:
    """``tagscope tag``: prepare, then a running job with its tasks (none sent yet), and the text
    job of the tagged photos still to be read when the job reads text (``ocr``; None: the settings
    say, :func:`tagger.params.ocr_wanted`)."""
    mv_id, found, todo = prepare(db, model, paths, retry_failed=retry_failed, retag=retag, empty_ok=empty_ok,
                                 echo=echo)
    params = JobParams.from_settings(settings, ocr=ocr)
    folders = [str(Path(p).resolve()) for p in paths]
    job_id, task_ids = rows.create_job(db, mv_id, todo, params, settings.task_size, runner, paths=folders)
    rows.note_offline(db, job_id, found.offline)
    text_job = start_text_job(settings, db, params, found.image_ids, todo, runner, folders,
                              retry_failed=retry_failed)
    return Started(job_id, task_ids, found, model, mv_id, text_job)


def start_text_job(settings: Settings, db: Database, params: JobParams, image_ids: Sequence[int],
                   tagging: Sequence[int], runner: str, paths: Sequence[str], *,
                   retry_failed: bool = False) -> tuple[int, list[int]] | None:
    """A text job for the tagged photos among ``image_ids`` not being tagged (``tagging``) whose
    text is still to be read (``retry_failed``: failed readings too): (job id, task ids), or None
    when the job does not read text or nothing is left to read."""
    if not params.ocr:
        return None
    busy = set(tagging)
    todo = [i for i in to_read(db, image_ids, retry_failed=retry_failed) if i not in busy]
    if not todo:
        return None
    return rows.create_job(db, None, todo, params, settings.task_size, runner, kind=TEXT_JOB, paths=list(paths))


def start_queued_job(settings: Settings, job_id: int) -> list[tuple[int, int]] | None:
    """The scan of a queued job (a schedule's run), on this worker under a lease: the (job id,
    task id) pairs to send (its text job's too), or None when the job is not this worker's to
    scan (done, or leased elsewhere)."""
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
        sends = [(job_id, task_id) for task_id in rows.add_work(db, job_id, mv_id, todo, settings.task_size)]
        text_job = start_text_job(settings, db, JobParams.from_json(params["tag"]), found.image_ids, todo,
                                  rows.WORKERS, params["paths"])
        return sends + ([(text_job[0], task_id) for task_id in text_job[1]] if text_job else [])
