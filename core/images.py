"""Decoding photo files into RGB images, robustly.

Everything here treats its input as untrusted: a photo folder can hold empty files, truncated
uploads, text files with a ``.jpg`` name and decompression bombs. Each of those becomes an
:class:`ImageDecodeError` with a short human-readable reason, never a crash of the whole batch.
Finding the files is :mod:`core.files`' job.

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

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from core.media.metadata import Capture, from_exif

__all__ = [
    "BACKGROUND_RGB",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "ImageInfo",
    "decode_photo",
    "exif_capture",
    "image_from_bytes",
    "jpeg_header",
    "read_bytes",
    "read_file",
    "read_image",
]

#: that our limit does not silently follow an application's change to Pillow's global.
DEFAULT_MAX_PIXELS = 178_956_970

#: Transparent pixels are composited onto white: most transparent photos/cut-outs/logos are made
#: for a white page, and a fixed colour keeps embeddings of the same file reproducible.
BACKGROUND_RGB: tuple[int, int, int] = (255, 255, 255)

# Pillow format ids we let Image.open try. Restricting the list keeps the attack surface to
# photo formats: Pillow's catalogue also holds obscure decoders and EPS, which runs Ghostscript.
_PHOTO_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "AVIF", "HEIF", "JPEG2000", "PPM")

_CANDIDATE_EXTENSIONS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".mpo": "MPO",
    ".png": "PNG", ".apng": "PNG", ".gif": "GIF", ".webp": "WEBP", ".bmp": "BMP", ".dib": "DIB",
    ".tif": "TIFF", ".tiff": "TIFF", ".avif": "AVIF", ".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF",
    ".jp2": "JPEG2000", ".j2k": "JPEG2000",
    ".jpf": "JPEG2000", ".jpx": "JPEG2000", ".ppm": "PPM", ".pgm": "PPM", ".pbm": "PPM", ".pnm": "PPM",
}  # fmt: skip


def _readable_formats() -> tuple[str, ...]:
    # AVIF and JPEG 2000 depend on optional libraries compiled into Pillow, HEIF on pillow-heif's
    # opener (registered here when it is installed: phones write HEIC); only offer what this
    # build can actually open (Image.open raises KeyError for an id it does not know).
    Image.init()
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        pillow_heif.register_heif_opener()
    return tuple(fmt for fmt in _PHOTO_FORMATS if fmt in Image.OPEN)


_FORMATS = _readable_formats()

#: Lower-case file extensions (with the dot) of photo formats this Pillow build can decode.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ext for ext, fmt in _CANDIDATE_EXTENSIONS.items() if fmt in _FORMATS
)


# EXIF orientation value -> the transpose that displays the image upright (as ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # orientations whose transpose swaps width and height

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_MAX_REASON_CHARS = 200


class ImageDecodeError(Exception):
    """An image file that cannot be tagged.

    ``reason`` is a short human sentence suitable for showing in the UI or storing in the
    database, e.g. ``'empty file'``, ``'truncated image data'``,
    ``'not an image (unrecognised format)'`` or ``'decompression bomb: ... (raise max_pixels to allow it)'``.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason



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



# --------------------------------------------------------------------------- decoding


def one_line(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 3] + "..."
    return text


def _bomb_reason(pixels: int | None, max_pixels: int) -> str:
    if pixels is not None and pixels <= max_pixels:
        # Our limit allows it but Pillow's own hard limit (2 * Image.MAX_IMAGE_PIXELS) does not;
        # only the application can lift that, by changing Pillow's process-wide setting.
        hard = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 0
        return (
            f"decompression bomb: {pixels} pixels exceeds Pillow's hard limit of {hard} "
            "(Image.MAX_IMAGE_PIXELS)"
        )
    shown = "more than" if pixels is None else str(pixels)
    return (
        f"decompression bomb: {shown} pixels exceeds the limit of {max_pixels} (raise max_pixels to allow it)"
    )


def check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    pixels = size[0] * size[1]
    if pixels > max_pixels:
        raise ImageDecodeError(_bomb_reason(pixels, max_pixels))


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """Scale high bit-depth greyscale to 8 bits (Pillow's own convert('L') clips at 255)."""
    arr = np.asarray(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        lo, hi = 0.0, 65535.0
    elif arr.size and img.mode == "I" and arr.min() >= 0 and arr.max() <= 65535:
        # 16-bit PNG/TIFF data that some decoders hand over as 32-bit 'I'.
        lo, hi = 0.0, 65535.0
    elif arr.size and img.mode == "F" and arr.min() >= 0.0 and arr.max() <= 1.0:
        lo, hi = 0.0, 1.0
    elif arr.size:
        # Unknown range (signed or 32-bit data, HDR floats): stretch what is there.
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    else:
        lo, hi = 0.0, 1.0
    scaled = (arr.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1e-12))
    out = np.nan_to_num(np.rint(scaled), nan=0.0).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out)


def _composite(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, BACKGROUND_RGB)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def to_rgb(img: Image.Image) -> Image.Image:
    """A new RGB image from a loaded image of any mode; transparency composited on BACKGROUND_RGB."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _sixteen_bit_to_l(img).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in img.info:
        # Covers P/L/RGB with a tRNS colour key as well as real alpha channels.
        return _composite(img.convert("RGBA"))
    # CMYK (Adobe-inverted JPEGs are un-inverted by Pillow's decoder), L, 1, P, YCbCr, RGBX...
    return img.convert("RGB")


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - corrupt EXIF must not cost us an otherwise good photo
        return 1
    return value if isinstance(value, int) else 1


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
                # The caller allowed more than Pillow's warning threshold; _check_pixels enforces
                # the caller's limit instead (Pillow's hard error at twice its limit still applies).
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            else:
                warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_FORMATS)
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
                orientation = _orientation(img)
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
        raise ImageDecodeError(_bomb_reason(int(match.group(1)) if match else None, max_pixels)) from exc
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

    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    width, height = full_size if orientation not in _SWAPS_SIDES else full_size[::-1]  # 5-8 swap the sides
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


def readable(fmt: str) -> bool:
    """Whether this install can open Pillow format ``fmt`` (``HEIF`` needs pillow-heif)."""
    return fmt in _FORMATS


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
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=_FORMATS) as img:
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
            orientation = _orientation(img)
            width, height = img.size if orientation not in _SWAPS_SIDES else img.size[::-1]
            return ImageInfo(width=width, height=height, format="JPEG", mode=img.mode, frames=1), orientation
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_bomb_reason(None, max_pixels)) from exc
    except Exception:  # noqa: BLE001 - let the full decoder give the precise reason
        return None
