"""Storing what OCR read (``photo_text``, ``text_reads``) in a batch's transaction, and finding the
photos whose text is still to be read.

A photo's reading replaces its last one whole: its lines (the text, :func:`core.words.fold` of
it for search, confidence, language, box, a video's frame) and one ``text_reads`` row saying
``read`` (with how many lines, 0 included) or ``failed`` (one line: why), by which engine, for
which content of the file (its SHA-256): a file whose content changed is read again
(:func:`to_read`). A few bulk statements per batch whatever its size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from core.db import Database
from core.schema import DUPLICATE, FAILED_READ, READ, TAGGED, Image, PhotoText, TextRead, utcnow
from core.sql_in import chunks, one_of
from core.words import fold
from mkt.ocr import Line


@dataclass
class PhotoReading:
    """What OCR made of one photo: its lines with the frame each was read in (a video's; None
    for a still), or why it could not read it (one line)."""

    lines: list[tuple[int | None, Line]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Texts:
    """A batch's readings by image id, and the engine that made them."""

    readings: dict[int, PhotoReading]
    engine: str


def put_readings(s: Session, texts: Texts, hashes: Mapping[int, str | None]) -> None:
    """Replace the text and the ``text_reads`` row of each photo in ``texts``; ``hashes``: the
    content hash of the file each was read from (None: not known)."""
    ids = sorted(texts.readings)
    if not ids:
        return
    drop_readings(s, ids)
    now = utcnow()
    rows, reads = [], []
    for image_id in ids:
        reading = texts.readings[image_id]
        for n, (frame_ms, line) in enumerate(reading.lines):
            rows.append({"image_id": image_id, "line": n, "text": line.text[:4000], "folded": fold(line.text)[:4000],
                         "confidence": float(line.confidence), "language": line.language, "box": line.box,
                         "frame_ms": frame_ms})
        reads.append({"image_id": image_id, "state": FAILED_READ if reading.error else READ,
                      "error": reading.error[:1000] if reading.error else None, "lines": len(reading.lines),
                      "engine": texts.engine[:120], "content_hash": hashes.get(image_id), "read_at": now})
    if rows:
        s.execute(insert(PhotoText), rows)
    s.execute(insert(TextRead), reads)


def drop_readings(s: Session, image_ids: Sequence[int]) -> None:
    """Forget what OCR read in these photos (a file that no longer decodes keeps no stale text)."""
    if image_ids:
        s.execute(delete(PhotoText).where(one_of(PhotoText.image_id, list(image_ids))))
        s.execute(delete(TextRead).where(one_of(TextRead.image_id, list(image_ids))))


def mark_job(s: Session, image_ids: Sequence[int], job_id: int) -> None:
    """Record that a text job stored these photos' readings (``images.job_id``: its progress, and
    what a task run again skips), their status and tags untouched."""
    if image_ids:
        s.execute(update(Image).where(one_of(Image.id, list(image_ids))).values(job_id=job_id))


def current_readings(db: Database, image_ids: Sequence[int]) -> dict[int, str]:
    """Image id -> the content hash its stored reading was made for, for the photos among
    ``image_ids`` read without failing: tagging them again reads them again only when the file's
    hash differs (a model upgrade, ``--retag``: the text is the file's, not the model's)."""
    out: dict[int, str] = {}
    with db.session() as s:
        for chunk in chunks(sorted(set(image_ids))):
            out.update(s.execute(select(TextRead.image_id, TextRead.content_hash).where(
                one_of(TextRead.image_id, chunk), TextRead.state == READ, TextRead.content_hash.is_not(None))).all())
    return out


def to_read(db: Database, image_ids: Sequence[int], retry_failed: bool = False) -> list[int]:
    """The tagged photos (duplicates too) among ``image_ids`` whose text is still to be read: no
    reading, one of another content of the file, or (``retry_failed``) one that failed."""
    stale = or_(TextRead.image_id.is_(None), TextRead.content_hash.is_(None),
                TextRead.content_hash != Image.content_hash)
    if retry_failed:
        stale = or_(stale, TextRead.state == FAILED_READ)
    out: list[int] = []
    with db.session() as s:
        for chunk in chunks(sorted(set(image_ids))):
            out.extend(s.scalars(select(Image.id).outerjoin(TextRead, TextRead.image_id == Image.id)
                                 .where(one_of(Image.id, chunk), Image.status.in_((TAGGED, DUPLICATE)), stale)))
    return sorted(out)
