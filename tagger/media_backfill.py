"""Catching up: what files tagged before the ``media`` table existed (migration 0007) say about
their shots, read from their headers and containers only (no pixel decoded, no model run), the
next time a job scans them: a nightly re-tagging job brings an upgraded library up to date without
tagging it again. About a millisecond a photo (EXIF header), a few for a RAW or a video.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from sqlalchemy import select

from core.db import Database
from core.media.read import read_capture
from core.schema import DUPLICATE, TAGGED, Image, Media
from core.sql_in import chunks, one_of
from tagger.media_store import put_media

CHUNK = 500


def without_media(db: Database, image_ids: Sequence[int]) -> list[tuple[int, bytes, float]]:
    """(id, raw path, mtime) of the tagged images among ``image_ids`` that have no ``media`` row."""
    out: list[tuple[int, bytes, float]] = []
    with db.session() as s:
        for chunk in chunks(list(image_ids)):
            rows = s.execute(select(Image.id, Image.path_raw, Image.mtime)
                             .outerjoin(Media, Media.image_id == Image.id)
                             .where(one_of(Image.id, chunk), Image.status.in_((TAGGED, DUPLICATE)),
                                    Media.image_id.is_(None))).all()
            out.extend((image_id, raw, mtime) for image_id, raw, mtime in rows)
    return out


def catch_up(db: Database, image_ids: Sequence[int], echo: Callable[[str], None] = lambda _m: None) -> int:
    """Store the ``media`` rows that tagged images among ``image_ids`` lack; returns how many."""
    todo = without_media(db, image_ids)
    for start in range(0, len(todo), CHUNK):
        items = []
        for image_id, raw, mtime in todo[start:start + CHUNK]:
            kind, capture = read_capture(os.fsdecode(raw), mtime)
            items.append({"id": image_id, "kind": kind, "capture": capture, "decoder": None})
        with db.session() as s:
            put_media(s, items)
    if todo:
        echo(f"read when, where and with what of {len(todo)} files tagged before that was stored")
    return len(todo)
