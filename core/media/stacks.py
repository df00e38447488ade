"""Stacks: the files of one shot, which cameras and phones write side by side under one name.

A RAW and the JPEG or HEIC the camera rendered from it (``IMG_0002.DNG`` + ``IMG_0002.JPG``), a
Live Photo's still and its video (``IMG_0001.HEIC`` + ``IMG_0001.MOV``): same folder, same name
but for the extension. Search and browsing show a stack once, with the still as its face and the
other files listed on it; every file stays registered, tagged and exported on its own.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from core.media.kinds import PHOTO, RAW, VIDEO, media_kind
from core.schema import Image, Media

# which member is the face: a rendered still first, then the RAW, then the video
FACE_ORDER = {PHOTO: 0, RAW: 1, VIDEO: 2}


def stack_key(path: str | os.PathLike[str] | bytes) -> str:
    """The key the files of one shot share: their folder and their name without extension,
    case-insensitive (cameras write ``.JPG`` beside ``.CR2``, phones ``.HEIC`` beside ``.MOV``)."""
    raw = os.fsencode(path)
    folder, name = os.path.split(raw)
    stem = os.path.splitext(name)[0].lower()
    return hashlib.sha256(folder + b"/" + stem).hexdigest()


def face_rank(kind: str | None, image_id: int) -> tuple[int, int]:
    """Sort key of a stack's members: the face first."""
    return FACE_ORDER.get(kind or PHOTO, 3), image_id


def stack_groups(s: Session, keys: set[str], status: ColumnElement[bool]) -> dict[str, list[tuple[int, str, str]]]:
    """Stack key -> (id, path, kind) of its files whose status passes ``status``, the face first
    (:func:`core.media.stacks.face_rank`)."""
    members: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    if keys:
        for i, path, key, kind in s.execute(select(Image.id, Image.path, Image.stack_key, Media.kind)
                                            .outerjoin(Media, Media.image_id == Image.id)
                                            .where(Image.stack_key.in_(keys), status)):
            members[key].append((i, path, kind or media_kind(path)))
    return {key: sorted(group, key=lambda m: face_rank(m[2], m[0])) for key, group in members.items()}
