"""How far a job got, counted from what it stored: each image row records the job that last stored
it (``images.job_id``, written by :mod:`tagger.batch_store` in the same transaction as its status
and tags), so a job's done/failed figures are a count of its images' states, exact whatever was
killed when. A text job (:data:`tagger.params.TEXT_JOB`) records itself there too, beside each
photo's reading: its photos read and failed are its readings' states. SQL only: ``tagscope jobs``
and ``tagscope status`` read these fast."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.schema import DUPLICATE, FAILED, FAILED_READ, READ, TAGGED, Image, Job, TextRead
from tagger.params import TEXT_JOB


def progress(s: Session, job: Job) -> tuple[int, int]:
    """(done, failed) of a job: counted from its images, frozen once it is done or failed (a
    cancelled job can be resumed, and its last batch may land after the cancel: counted live)."""
    if job.state in ("done", "failed"):
        return job.done, job.failed
    if job.kind == TEXT_JOB:
        reads = dict(s.execute(select(TextRead.state, func.count()).join(Image, Image.id == TextRead.image_id)
                               .where(Image.job_id == job.id).group_by(TextRead.state)).all())
        return reads.get(READ, 0), reads.get(FAILED_READ, 0)
    counts = dict(s.execute(select(Image.status, func.count()).where(Image.job_id == job.id)
                            .group_by(Image.status)).all())
    return counts.get(TAGGED, 0) + counts.get(DUPLICATE, 0), counts.get(FAILED, 0)
