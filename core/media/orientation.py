"""EXIF orientation: which way up a photo is shown, and its size as shown.

Cameras store pixels as the sensor read them and a tag (0x0112) saying how to turn them; every
photo here is handed on upright (as ``ImageOps.exif_transpose`` would), with its displayed size.
"""

from __future__ import annotations

from PIL import Image

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


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1, upright, when it has none or it is corrupt)."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - corrupt EXIF must not cost us an otherwise good photo
        return 1
    return value if isinstance(value, int) else 1


def upright(img: Image.Image, value: int) -> Image.Image:
    """``img`` turned as orientation ``value`` says (itself when it is upright already)."""
    transpose = _ORIENTATION_TRANSPOSE.get(value)
    return img if transpose is None else img.transpose(transpose)


def displayed_size(size: tuple[int, int], value: int) -> tuple[int, int]:
    """(width, height) as shown of pixels stored as ``size`` with orientation ``value``."""
    return size if value not in _SWAPS_SIDES else (size[1], size[0])  # 5-8 swap the sides
