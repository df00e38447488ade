"""Decoding still photos (JPEG, PNG, HEIC, AVIF...) into upright RGB images through Pillow, robustly.

Everything here treats its input as untrusted: a photo folder can hold empty files, truncated
uploads, text files with a ``.jpg`` name and decompression bombs. Each of those becomes an
:class:`ImageDecodeError` (:mod:`core.media.errors`) with a short human-readable reason, never a
crash of the whole batch. Only the formats of :mod:`core.media.formats` are opened, images over
``max_pixels`` are refused from their header (:mod:`core.media.limits`), the EXIF orientation is
applied (:mod:`core.media.orientation`) and every mode becomes RGB (:mod:`core.media.rgb`).
Finding the files is :mod:`core.files`' job; any kind of library file, RAW and video included,
is read by :func:`core.media.read.read_media`.

The functions keep no mutable module state and never change Pillow's global settings, so they
are safe to call in DataLoader worker processes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from core.media.errors import ImageDecodeError, one_line
from core.media.formats import FORMATS
from core.media.limits import bomb_reason, check_pixels
from core.media.metadata import Capture, from_exif
from core.media.orientation import displayed_size, orientation, upright
from core.media.rgb import to_rgb
from core.settings import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ImageInfo:
    """Facts about a decoded image.

    ``width``/``height`` are as displayed (after the EXIF orientation is applied), ``format`` is
    Pillow's format name (``'JPEG'``), ``mode`` the mode of the stored pixels before conversion to
    RGB (``'CMYK'``, ``'I;16'``, ``'P'``...), ``frames`` the number of frames (1 for stills).
    """

    width: int
    height: int
    format: str
    mode: str
    frames: int


def _frame_count(img: Image.Image) -> int:
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception:  # noqa: BLE001 - a damaged later frame does not spoil the first one
        return 1


def _decode(data: bytes, max_pixels: int, draft_size: int | None = None,
            capture: bool = False) -> tuple[Image.Image, ImageInfo, Capture | None]:
    if not data:
        raise ImageDecodeError("empty file")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    # Truncated files must fail, not come back half grey: refuse to run if someone flipped
    # Pillow's process-wide switch rather than silently change behaviour.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; tagscope needs it False")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            if limit is not None and max_pixels > limit:
                # The caller allowed more than Pillow's warning threshold; check_pixels enforces
                # the caller's limit instead (Pillow's hard error at twice its limit still applies).
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            else:
                warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            try:
                # Header only so far: reject oversized images before any pixel is decoded.
                check_pixels(img.size, max_pixels)
                fmt = img.format or "unknown"
                full_size = img.size
                if draft_size is not None:
                    # JPEG only: libjpeg decodes at the smallest of 1/8, 1/4, 1/2 and 1 that keeps
                    # both sides >= draft_size (DCT scaling; 3-4x faster than a full 12 MP decode).
                    img.draft(None, (draft_size, draft_size))
                img.load()
                mode = img.mode
                turn = orientation(img)
                shot = _capture(img) if capture else None
                rgb = to_rgb(img)
                # Counting frames seeks through the file (GIF), so only once frame 0 is safe in rgb.
                frames = _frame_count(img)
            finally:
                img.close()
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        match = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageDecodeError(bomb_reason(int(match.group(1)) if match else None, max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image (unrecognised format)") from exc
    except (OSError, EOFError, SyntaxError) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
            raise ImageDecodeError("truncated image data") from exc
        raise ImageDecodeError(one_line(f"cannot decode image: {type(exc).__name__}: {exc}")) from exc
    except Exception as exc:
        # Decoders fed hostile bytes raise all sorts (ValueError, struct.error, MemoryError...);
        # one bad file must become a reason, not abort a batch of thousands.
        raise ImageDecodeError(one_line(f"cannot decode image: {type(exc).__name__}: {exc}")) from exc

    rgb = upright(rgb, turn)
    width, height = displayed_size(full_size, turn)
    info = ImageInfo(width=width, height=height, format=fmt, mode=mode, frames=frames)
    return rgb, info, shot


def _capture(img: Image.Image) -> Capture:
    try:
        return from_exif(img.getexif())
    except Exception:  # noqa: BLE001 - corrupt EXIF must not cost us an otherwise good photo
        return Capture()


def image_from_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, ImageInfo]:
    """Decode image bytes already in memory into an upright RGB image.

    Returns ``(image, info)``: the first frame of animations, EXIF orientation applied,
    transparency composited onto :data:`BACKGROUND_RGB`, 16-bit greyscale scaled (not clipped)
    to 8 bits. Images over ``max_pixels`` are refused from their header, before decoding.

    Raises:
        ImageDecodeError: the bytes are empty, not an image, truncated, too large or otherwise
            undecodable; ``.reason`` says which.
    """
    image, info, _ = _decode(data, max_pixels)
    return image, info


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        # Check first: open() on a FIFO would block forever waiting for a writer.
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise ImageDecodeError("cannot read file: is a directory")
            raise ImageDecodeError("cannot read file: not a regular file")
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImageDecodeError(one_line(f"cannot read file: {exc.strerror or exc}")) from exc


def read_image(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> tuple[Image.Image, ImageInfo, str]:
    """Read an image file once and decode it.

    Returns ``(image, info, sha256)``: the RGB image and info as :func:`image_from_bytes`
    gives them, and the hex SHA-256 of the file's bytes (for content deduplication). With
    ``draft_size``, a JPEG is decoded at a reduced scale whose sides stay >= ``draft_size``
    (other formats decode whole); ``info`` still gives the full displayed size.

    Raises:
        ImageDecodeError: the file cannot be read (``'cannot read file: ...'``) or decoded.
    """
    data = read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    image, info, _ = _decode(data, max_pixels, draft_size=draft_size)
    return image, info, digest


def decode_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
                 ) -> tuple[Image.Image, ImageInfo, Capture]:
    """As :func:`image_from_bytes` (with ``draft_size`` as :func:`read_image`), plus what the
    photo's EXIF says about its shot (:class:`core.media.metadata.Capture`), read in the same pass."""
    image, info, shot = _decode(data, max_pixels, draft_size=draft_size, capture=True)
    return image, info, shot or Capture()


def exif_capture(source: bytes | str, mtime: float | None = None) -> Capture:
    """What a photo's EXIF says about its shot, from its header only (no pixels decoded), given
    its bytes or its path; dated by ``mtime`` when the EXIF has no date."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=FORMATS) as img:
                shot = _capture(img)
    except Exception:  # noqa: BLE001 - the decoder gives the precise reason for a bad file
        shot = Capture()
    return shot.with_file_time(mtime) if mtime is not None else shot


def read_file(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """The bytes of an image file and their hex SHA-256, for decoders elsewhere (the GPU's).

    Raises:
        ImageDecodeError: the file cannot be read.
    """
    data = read_bytes(path)
    return data, hashlib.sha256(data).hexdigest()


def jpeg_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ImageInfo, int] | None:
    """``(info, EXIF orientation)`` of a plain JPEG that a GPU decoder can take (3-channel YCbCr
    or greyscale, one frame), read from its header without decoding pixels; None for anything
    else (CMYK, MPO, PNG...: decode those with :func:`read_image`).

    Raises:
        ImageDecodeError: the header is not an image, or it is over ``max_pixels``.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=("JPEG",))
        with img:
            check_pixels(img.size, max_pixels)
            if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                return None
            turn = orientation(img)
            width, height = displayed_size(img.size, turn)
            return ImageInfo(width=width, height=height, format="JPEG", mode=img.mode, frames=1), turn
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(bomb_reason(None, max_pixels)) from exc
    except Exception:  # noqa: BLE001 - let the full decoder give the precise reason
        return None
