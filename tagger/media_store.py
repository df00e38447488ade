"""Storing what each decoded file says about its shot (``media``) and a video's frames
(``video_frames``), in the batch's transaction: a few bulk statements per batch.

Places are looked up here, once per batch, from the GPS positions the decode workers read
(:func:`core.media.places.places`: offline, ~0.15 ms a position), so the workers never load the
place table.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from core.errors import TagscopeError
from core.media.errors import ImageDecodeError
from core.media.metadata import Capture
from core.media.places import Place, places
from core.media.stacks import stack_groups
from core.schema import MISSING, Image, Media, VideoFrame
from core.sql_in import one_of

log = logging.getLogger(__name__)


def _places(items: list[dict[str, Any]]) -> list[Place | None]:
    located = [n for n, it in enumerate(items) if it["capture"].lat is not None]
    out: list[Place | None] = [None] * len(items)
    if not located:
        return out
    try:
        found = places([(items[n]["capture"].lat, items[n]["capture"].lon) for n in located])
    except (ImageDecodeError, TagscopeError) as exc:  # the place package is missing: positions stay
        log.warning("no places for GPS positions: %s", exc)
        return out
    for n, place in zip(located, found):
        out[n] = place
    return out


def media_row(item: dict[str, Any], place: Place | None) -> dict[str, Any]:
    c = item["capture"]
    return {"image_id": item["id"], "kind": item.get("kind", "photo"), "taken": c.taken,
            "taken_offset_min": c.offset_min, "taken_source": c.source, "camera_make": c.make,
            "camera_model": c.model, "lens": c.lens, "gps_lat": c.lat, "gps_lon": c.lon,
            "country": place.country if place else None, "country_code": place.country_code if place else None,
            "region": place.region if place else None, "city": place.city if place else None,
            "neighbourhood": place.neighbourhood if place else None,
            "duration_s": c.duration_s, "decoder": item.get("decoder")}


def put_media(s: Session, items: list[dict[str, Any]]) -> None:
    """Replace the ``media`` rows of the decoded ``items`` (they carry a ``capture``)."""
    items = [it for it in items if it.get("capture") is not None]
    if not items:
        return
    s.execute(delete(Media).where(one_of(Media.image_id, [it["id"] for it in items])))
    s.execute(insert(Media), [media_row(it, place) for it, place in zip(items, _places(items))])


def put_frames(s: Session, mv_id: int, frames: dict[int, tuple[list[float], np.ndarray]]) -> None:
    """Replace this model version's frames of the videos in ``frames`` (image id -> times, [F, D])."""
    if not frames:
        return
    s.execute(delete(VideoFrame).where(one_of(VideoFrame.image_id, frames), VideoFrame.model_version_id == mv_id))
    s.execute(insert(VideoFrame), [
        {"image_id": image_id, "model_version_id": mv_id, "idx": i, "time_s": float(t),
         "vector": np.asarray(vectors[i], np.float16).tobytes()}
        for image_id, (times, vectors) in frames.items() for i, t in enumerate(times)])


def drop_frames(s: Session, image_ids: list[int]) -> None:
    """Every version's frames of images that lost their embedding (failed, duplicates, changed)."""
    if image_ids:
        s.execute(delete(VideoFrame).where(one_of(VideoFrame.image_id, image_ids)))


def media_json(s: Session, image_id: int, stack: str | None) -> dict[str, Any]:
    """An image's shot as ``tagscope show --json`` and ``GET /api/images/ID`` give it: ``media``,
    ``taken_at`` (ISO 8601, with the offset when known), ``taken_at_source``, ``camera``, ``gps``,
    ``place``, ``duration_s`` and ``stack`` (the other files of its shot, face first)."""
    row = s.get(Media, image_id)
    capture = Capture(taken=row.taken, offset_min=row.taken_offset_min) if row is not None else Capture()
    members = stack_members(s, stack)
    return {
        "media": row.kind if row is not None else None,
        "taken_at": capture.taken_iso(),
        "taken_at_source": row.taken_source if row is not None else None,
        "camera": None if row is None or not (row.camera_make or row.camera_model or row.lens) else
        {"make": row.camera_make, "model": row.camera_model, "lens": row.lens},
        "gps": None if row is None or row.gps_lat is None else {"lat": row.gps_lat, "lon": row.gps_lon},
        "place": None if row is None or row.country is None else
        {"country": row.country, "region": row.region, "city": row.city, "neighbourhood": row.neighbourhood},
        "duration_s": row.duration_s if row is not None else None,
        "stack": [path for other, path, _ in members if other != image_id] if len(members) > 1 else [],
        "stack_face": members[0][0] if len(members) > 1 else None,
    }


def stack_members(s: Session, stack: str | None) -> list[tuple[int, str, str | None]]:
    """(id, path, kind) of the registered files of one shot, the face first (:mod:`core.media.stacks`)."""
    if stack is None:
        return []
    return stack_groups(s, {stack}, Image.status != MISSING).get(stack, [])
