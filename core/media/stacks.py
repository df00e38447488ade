"""Stacks: the files of one shot, which cameras and phones write side by side under one name.

A RAW and the JPEG or HEIC the camera rendered from it (``IMG_0002.DNG`` + ``IMG_0002.JPG``), a
Live Photo's still and its video (``IMG_0001.HEIC`` + ``IMG_0001.MOV``): same folder, same name
but for the extension. Search and browsing show a stack once, with the still as its face and the
other files listed on it; every file stays registered, tagged and exported on its own.
"""

from __future__ import annotations

import hashlib
import os

from core.media.kinds import PHOTO, RAW, VIDEO

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
