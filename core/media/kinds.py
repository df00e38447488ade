"""Which files a photo library holds, by extension, and which library reads each kind.

A file whose kind needs a library that is not installed is still registered (a phone library is
mostly HEIC and video: skipping them silently would hide most of it); decoding it fails with a
one-line reason naming the package to install.
"""

from __future__ import annotations

import importlib.util
import os

from core.media.errors import ImageDecodeError
from core.media.formats import IMAGE_EXTENSIONS

PHOTO, RAW, VIDEO = "photo", "raw", "video"

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".heics"})
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                            ".raf", ".pef", ".srw", ".3fr", ".iiq", ".rwl", ".x3f"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".3gp", ".3g2", ".mts", ".m2ts"})
PHOTO_EXTENSIONS = IMAGE_EXTENSIONS | HEIF_EXTENSIONS | {".avif"}
MEDIA_EXTENSIONS = PHOTO_EXTENSIONS | RAW_EXTENSIONS | VIDEO_EXTENSIONS

# what needs a library -> (what it reads, import name, pip package)
LIBRARIES = {"heif": ("HEIC/HEIF files", "pillow_heif", "pillow-heif"), RAW: ("RAW files", "rawpy", "rawpy"),
             VIDEO: ("video files", "av", "av"), "exif": ("RAW metadata", "exifread", "exifread"),
             "places": ("places from GPS", "reverse_geocode", "reverse-geocode")}


def extension(path: str | os.PathLike[str]) -> str:
    return os.path.splitext(os.fsdecode(path))[1].lower()


def media_kind(path: str | os.PathLike[str]) -> str | None:
    """``photo``, ``raw`` or ``video`` for a file a library may hold, None for anything else."""
    ext = extension(path)
    if ext in RAW_EXTENSIONS:
        return RAW
    if ext in VIDEO_EXTENSIONS:
        return VIDEO
    return PHOTO if ext in PHOTO_EXTENSIONS else None


def require(what: str):
    """Import the library for ``what`` (a key of :data:`LIBRARIES`), or fail with the package to install."""
    reads, module, package = LIBRARIES[what]
    if importlib.util.find_spec(module) is None:
        raise ImageDecodeError(f"cannot read {reads}: the {package} package is not installed (pip install {package})")
    return importlib.import_module(module)
