"""What a tagging job's stored results depend on, as the pipeline (:mod:`tagger.tagging`) takes it.

The pipeline owns these: the job machinery (:mod:`tagger.jobs`) fixes them in the job row when a
job is queued (:meth:`JobParams.to_json`) and hands them back to the pipeline with the job's model
version (:class:`JobInfo`). How to run a job (device, batch size, decode workers) is each
worker's own setting, never part of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.settings import DEFAULT_MAX_PIXELS, Settings

TEXT_JOB = "text"  # the kind of a job that only reads the text of tagged photos (tagger.ocr_stage.read_texts)


@dataclass(frozen=True)
class JobParams:
    """What a job's stored results depend on, fixed when it is queued."""

    top_n: int
    min_score: float | None
    max_pixels: int
    ocr: bool = False  # read the words in the photos too (mkt.ocr), stored with each batch

    @classmethod
    def from_settings(cls, settings: Settings, ocr: bool | None = None) -> JobParams:
        """The settings' parameters; ``ocr``: whether the job reads text, when the caller decided
        it (:func:`tagger.ocr_stage.job_ocr`), else :func:`ocr_wanted` (no import of the engine)."""
        return cls(top_n=settings.top_n, min_score=settings.min_score, max_pixels=settings.max_pixels,
                   ocr=ocr_wanted(settings) if ocr is None else ocr)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobParams:
        # Jobs queued by older versions also stored the submitter's device and batch size: ignored.
        return cls(top_n=int(data["top_n"]), min_score=data.get("min_score"),
                   max_pixels=int(data.get("max_pixels", DEFAULT_MAX_PIXELS)), ocr=bool(data.get("ocr", False)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ocr_wanted(settings: Settings) -> bool:
    """Whether jobs queued with ``settings`` read text: ``ocr`` 1, or ``auto`` with ``rapidocr``
    installed (found, not imported: a worker that cannot import it records why, photo by photo)."""
    from mkt.ocr import importable

    return settings.ocr == "1" or (settings.ocr == "auto" and importable())


@dataclass(frozen=True)
class JobInfo:
    """A job row as a worker needs it: the model version it was queued for and its parameters."""

    id: int
    model_version_id: int
    version: str
    spec: str
    params: JobParams
