"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, ORF, RW2, RAF, PEF, SRW...) through LibRaw (rawpy).

Every RAW carries a JPEG preview that the camera rendered; when it is at least the size the model
needs, that preview is the photo (tens of milliseconds for a 24 MP file). Otherwise LibRaw
demosaics at half size (``half_size``: one pixel per 2x2 Bayer cell, 4x less work than a full
demosaic, still 3000 px wide for a 24 MP sensor). The camera's orientation is applied either way
(LibRaw rotates what it demosaics; the preview is rotated here).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from core.media.errors import ImageDecodeError, one_line
from core.media.kinds import RAW, require
from core.media.limits import check_pixels
from core.media.rgb import to_rgb

# rawpy warns on every read in a forked process (DataLoader workers) because an OpenMP pool does
# not survive a fork. LibRaw's pool lives in rawpy's own libgomp, which runs only in the process
# that decodes; the tagging process that forks the workers never decodes a RAW itself.
warnings.filterwarnings("ignore", message="rawpy is being used in a process created by multiprocessing",
                        category=RuntimeWarning)

_POOL_STARTED = False  # LibRaw ran in this process (or in the one that forked it): see forked_safely()

# LibRaw's ``flip`` -> the transpose that shows the preview upright
_FLIP = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def decode_raw(data: bytes, max_pixels: int, min_side: int | None) -> tuple[Image.Image, tuple[int, int], str]:
    """(upright RGB image, the sensor's displayed (width, height), which path decoded it:
    ``preview`` or ``demosaic``). ``min_side``: the preview is used when its shorter side is at
    least this (None: always demosaic).

    Raises:
        ImageDecodeError: not a RAW file LibRaw knows, truncated, or over ``max_pixels``.
    """
    global _POOL_STARTED
    rawpy = require(RAW)
    _POOL_STARTED = True
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            check_pixels((sizes.width, sizes.height), max_pixels)
            swapped = sizes.flip in (5, 6)
            shown = (sizes.height, sizes.width) if swapped else (sizes.width, sizes.height)
            if min_side is not None:
                preview = _preview(raw, rawpy, sizes.flip, max_pixels)
                if preview is not None and min(preview.size) >= min_side:
                    return preview, shown, "preview"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixels = raw.postprocess(half_size=True, use_camera_wb=True, no_auto_bright=False, output_bps=8)
    except ImageDecodeError:
        raise
    except MemoryError as exc:
        raise ImageDecodeError("cannot decode RAW: out of memory") from exc
    except Exception as exc:  # noqa: BLE001 - LibRaw's errors are one family of many names
        raise ImageDecodeError(_raw_reason(exc)) from exc
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB"), shown, "demosaic"


def fork_is_safe() -> bool:
    """False once LibRaw has run in this process: its OpenMP thread pool does not survive a fork,
    and a forked child that decodes a RAW then hangs or crashes. Processes that fork decode
    workers (:mod:`tagger.tagging`) start them from a fork server instead."""
    return not _POOL_STARTED


def _preview(raw, rawpy, flip: int, max_pixels: int) -> Image.Image | None:
    """The embedded preview, upright, or None when there is none usable."""
    try:
        thumb = raw.extract_thumb()
    except Exception:  # noqa: BLE001 - no preview (LibRawNoThumbnailError) or an unsupported one
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            img = Image.open(io.BytesIO(thumb.data), formats=("JPEG",))
            check_pixels(img.size, max_pixels)
            img.load()
            image = to_rgb(img)
        except Exception:  # noqa: BLE001 - a broken preview: demosaic instead
            return None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        image = Image.fromarray(np.ascontiguousarray(thumb.data)).convert("RGB")
    else:
        return None
    transpose = _FLIP.get(flip)
    return image.transpose(transpose) if transpose is not None else image


def _raw_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "LibRawFileUnsupportedError":
        return "not a RAW file LibRaw can read (unsupported or corrupt)"
    if name in ("LibRawIOError", "LibRawDataError") or "end of file" in str(exc).lower():
        return "truncated or corrupt RAW data"
    return one_line(f"cannot decode RAW: {name}: {exc}")
