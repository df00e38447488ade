"""One call for any file of a photo library: its pixels (one image, or a video's sampled frames),
its facts, its SHA-256 and what it says about its shot, read in one pass over the file.

Stills (JPEG, PNG, HEIC, AVIF...) decode through Pillow (:mod:`core.media.stills`; HEIC/HEIF through
pillow-heif's opener), RAW files through LibRaw (:mod:`core.media.raw`), videos through FFmpeg
(:mod:`core.media.video`). A file that cannot be read becomes an :class:`ImageDecodeError` with a
one-line reason, as for stills.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, replace

from PIL import Image

from core.files import file_sha256
from core.media.errors import ImageDecodeError
from core.media.formats import readable
from core.media.kinds import HEIF_EXTENSIONS, PHOTO, RAW, VIDEO, extension, media_kind, require
from core.media.metadata import Capture, from_exifread
from core.media.raw import decode_raw
from core.media.stills import ImageInfo, decode_photo, exif_capture, read_bytes
from core.media.video import read_clip, read_tags
from core.settings import DEFAULT_MAX_PIXELS

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Media:
    """A decoded file: ``frames`` are ``(time in seconds or None for a still, upright RGB image)``."""

    kind: str                      # photo | raw | video
    frames: list[tuple[float | None, Image.Image]]
    info: ImageInfo
    digest: str
    capture: Capture
    decoder: str                   # pillow | preview | demosaic | video

    @property
    def image(self) -> Image.Image:
        return self.frames[0][1]


def read_media(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None,
               mtime: float | None = None) -> Media:
    """Decode any library file. ``draft_size``: the side the caller needs at least (the model's
    input): JPEGs decode at a reduced scale, a RAW's preview is used when it is that large, video
    frames are scaled down. ``mtime``: dates a file whose metadata has no date (``taken_at_source``
    ``file``); read from the file when not given.

    Raises:
        ImageDecodeError: as :func:`core.media.stills.read_image`, for every kind.
    """
    path = os.fsdecode(path)
    kind = media_kind(path) or PHOTO
    if kind == VIDEO:
        digest = _file_digest(path)
        clip = read_clip(path, max_pixels, min_side=draft_size)
        info = ImageInfo(width=clip.width, height=clip.height, format=extension(path).lstrip(".").upper(),
                         mode="RGB", frames=len(clip.frames))
        media = Media(VIDEO, list(clip.frames), info, digest, clip.capture, "video")
    else:
        data = read_bytes(path)
        digest = hashlib.sha256(data).hexdigest()
        if kind == RAW:
            media = _raw(data, digest, max_pixels, draft_size)
        else:
            image, info, capture = _photo(path, data, max_pixels, draft_size)
            media = Media(PHOTO, [(None, image)], info, digest, capture, "pillow")
    if media.capture.taken is None:
        when = mtime if mtime is not None else _mtime(path)
        if when is not None:
            media = replace(media, capture=media.capture.with_file_time(when))
    return media


def _photo(path: str, data: bytes, max_pixels: int, draft_size: int | None):
    heif = extension(path) in HEIF_EXTENSIONS
    if heif and not readable("HEIF"):
        require("heif")  # raises: names the package to install
    try:
        return decode_photo(data, max_pixels, draft_size)
    except ImageDecodeError as exc:
        if heif and exc.reason.startswith("not an image"):  # libheif refuses a cut or damaged container
            raise ImageDecodeError("truncated or corrupt HEIC/HEIF file") from exc
        raise


def read_capture(path: str | os.PathLike[str], mtime: float | None = None) -> tuple[str, Capture]:
    """``(kind, what the file says about its shot)`` from its header or container only, no pixel
    decoded (a collection tagged before these were stored catches up cheaply). Never raises: a
    file that says nothing (or cannot be read) is dated by its mtime."""
    path = os.fsdecode(path)
    kind = media_kind(path) or PHOTO
    try:
        if kind == VIDEO:
            capture = read_tags(path)
        elif kind == RAW:
            with open(path, "rb") as fh:
                capture = from_exifread(require("exif").process_file(fh, details=False))
        else:
            capture = exif_capture(path)
    except Exception:  # noqa: BLE001 - facts are optional; the file is tagged already
        capture = Capture()
    if capture.taken is None:
        when = mtime if mtime is not None else _mtime(path)
        if when is not None:
            capture = capture.with_file_time(when)
    return kind, capture


def _raw(data: bytes, digest: str, max_pixels: int, draft_size: int | None) -> Media:
    image, (width, height), decoder = decode_raw(data, max_pixels, min_side=draft_size)
    info = ImageInfo(width=width, height=height, format="RAW", mode="RGB", frames=1)
    return Media(RAW, [(None, image)], info, digest, _raw_capture(data), decoder)


def _raw_capture(data: bytes) -> Capture:
    try:
        exifread = require("exif")
        return from_exifread(exifread.process_file(io.BytesIO(data), details=False))
    except Exception:  # noqa: BLE001 - a RAW whose header exifread cannot parse still tags
        return Capture()


def _file_digest(path: str) -> str:
    try:
        return file_sha256(path, _HASH_CHUNK)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file: {exc.strerror or exc}") from exc


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def thumbnail(path: str | os.PathLike[str], size: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS,
              at_s: float | None = None) -> bytes:
    """JPEG bytes of any library file for the web UI, its longest side ``size`` (smaller images are
    not enlarged), upright, transparency composited as :func:`core.media.stills.image_from_bytes` does;
    a video's frame at ``at_s`` (its middle frame without), a RAW's preview or demosaic.

    Raises:
        ImageDecodeError: as :func:`read_media`.
        ValueError: ``size`` is not positive.
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, got {size}")
    path = os.fsdecode(path)
    kind = media_kind(path) or PHOTO
    if kind == VIDEO:
        image = read_clip(path, max_pixels, min_side=size, at_s=at_s, one=True).frames[0][1]
    elif kind == RAW:
        image = decode_raw(read_bytes(path), max_pixels, min_side=size)[0]
    else:
        image = _photo(path, read_bytes(path), max_pixels, size)[0]
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()
