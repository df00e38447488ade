"""Job rows: what a tagging job is (its model version and the parameters its results depend
on), how far it got, and how it ends.

A job is queued by one machine and run by others. What the stored results depend on (the model
version, ``top_n``, ``min_score``, ``max_pixels``) is fixed in the job row when it is queued; how
to run it (device, batch size, decode workers) is each worker's own setting, never the
submitter's. A worker loads the job's model version and checks it has that version before it
writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import update

from core.db import Database, Job, ModelVersion, get_or_create_model_version, utcnow
from core.errors import TagscopeError
from core.images import DEFAULT_MAX_PIXELS
from core.settings import Settings
from mkt.factory import get_model
from mkt.tagmodel import TagModel


@dataclass(frozen=True)
class JobParams:
    """What a job's stored results depend on, fixed when it is queued."""

    top_n: int
    min_score: float | None
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: Settings) -> JobParams:
        return cls(top_n=settings.top_n, min_score=settings.min_score, max_pixels=settings.max_pixels)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobParams:
        # Jobs queued by older versions also stored the submitter's device and batch size: ignored.
        return cls(top_n=int(data["top_n"]), min_score=data.get("min_score"),
                   max_pixels=int(data.get("max_pixels", DEFAULT_MAX_PIXELS)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobInfo:
    """A job row as a worker needs it: the model version it was queued for and its parameters."""

    id: int
    model_version_id: int
    version: str
    spec: str
    params: JobParams


def ensure_model_version(db: Database, model: TagModel) -> int:
    """The id of ``model``'s version row (created on first use)."""
    with db.session() as s:
        return get_or_create_model_version(s, model.version, model.spec, model.embed_dim).id


def create_tag_job(db: Database, model_version_id: int, image_ids: Sequence[int], params: JobParams,
                   kind: str = "tag") -> int:
    """A job row for tagging ``image_ids`` with one model version; done at once when empty."""
    with db.session() as s:
        job = Job(kind=kind, state="running" if image_ids else "done", model_version_id=model_version_id,
                  total=len(image_ids), params={"tag": params.to_json()}, started_at=utcnow(),
                  finished_at=None if image_ids else utcnow())
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


def load_job_model(db: Database, job: JobInfo, device: str) -> TagModel:
    """The job's model, loaded on this machine's ``device``; refuses a model whose version is not
    the job's (another file at the same path, another release of the bundled model)."""
    model = get_model(job.spec, device)
    if model.version != job.version:
        message = (f"job {job.id} was queued for model {job.spec} version {job.version}, but this worker "
                   f"loads version {model.version} from that spec: give every worker the same model "
                   "file, then queue the job again")
        fail_job(db, job.id, message)
        raise TagscopeError(message)
    return model


def count_progress(db: Database, job_id: int, n_ok: int, n_failed: int) -> None:
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(done=Job.done + n_ok, failed=Job.failed + n_failed))


def finish_if_complete(db: Database, job_id: int) -> bool:
    """Mark the job done if every image was processed; True for the one caller that did it."""
    with db.session() as s:
        return bool(s.execute(update(Job).where(Job.id == job_id, Job.state == "running",
                                                Job.done + Job.failed >= Job.total)
                              .values(state="done", finished_at=utcnow())).rowcount)


def fail_job(db: Database, job_id: int, message: str) -> None:
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(state="failed", error=message[:1000],
                                                             finished_at=utcnow()))
