"""The words read in photos, read back for people: each photo's text lines (``photo_text``, in
reading order) and what OCR last did with it (``text_reads``), in the shape ``tagscope show``, the
API, the image page and the exports share. A line is ``{text, confidence, language, box,
frame_ms}``: ``box`` is four ``[x, y]`` corners in the upright photo's pixels (a video's: in its
frame at ``frame_ms``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import Image, PhotoText, TextRead
from core.sql_in import chunks

LINE_SEPARATOR = "\n"  # between a photo's lines where they travel as one text (CSV, JSONL)


def _line(row: PhotoText) -> dict[str, Any]:
    return {"text": row.text, "confidence": row.confidence, "language": row.language,
            "box": [[float(x), float(y)] for x, y in row.box or []], "frame_ms": row.frame_ms}


def lines_of(s: Session, image_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each photo's lines in reading order (a video's by frame, then line); every id present."""
    out: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks(sorted(set(image_ids))):
        out.update({i: [] for i in chunk})
        rows = s.scalars(select(PhotoText).where(PhotoText.image_id.in_(chunk))
                         .order_by(PhotoText.image_id, PhotoText.frame_ms, PhotoText.line, PhotoText.id))
        for row in rows:
            out[row.image_id].append(_line(row))
    return out


def reads_of(s: Session, image_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """What OCR last did with each photo that it read: ``state`` (``read`` or ``failed``), ``error``
    (one line), ``lines``, ``engine``, ``read_at`` and ``current`` (false when the file changed
    since: it is read again on the next tagging run)."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(image_ids))):
        rows = s.execute(select(TextRead, Image.content_hash).join(Image, Image.id == TextRead.image_id)
                         .where(TextRead.image_id.in_(chunk)))
        for read, content_hash in rows:
            out[read.image_id] = {
                "state": read.state, "error": read.error, "lines": read.lines, "engine": read.engine,
                "read_at": read.read_at.isoformat() if read.read_at else None,
                "current": read.content_hash is None or content_hash is None or read.content_hash == content_hash}
    return out


def text_json(s: Session, image_id: int) -> dict[str, Any]:
    """``text`` (the lines) and ``text_read`` (None when OCR never read the photo) of one photo."""
    return {"text": lines_of(s, [image_id])[image_id], "text_read": reads_of(s, [image_id]).get(image_id)}

