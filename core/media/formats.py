"""Which still formats Pillow may open, and which of them this install can.

Restricting ``Image.open`` to photo formats keeps the attack surface to photo decoders: Pillow's
catalogue also holds obscure decoders and EPS, which runs Ghostscript. HEIC/HEIF opens through
pillow-heif's opener, registered here when it is installed (phones write HEIC).
"""

from __future__ import annotations

from PIL import Image

# Pillow format ids we let Image.open try.
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
    # opener; only offer what this build can actually open (Image.open raises KeyError for an id
    # it does not know).
    Image.init()
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        pillow_heif.register_heif_opener()
    return tuple(fmt for fmt in _PHOTO_FORMATS if fmt in Image.OPEN)


#: The Pillow format ids this build opens, for ``Image.open(..., formats=FORMATS)``.
FORMATS = _readable_formats()

#: Lower-case file extensions (with the dot) of photo formats this Pillow build can decode.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ext for ext, fmt in _CANDIDATE_EXTENSIONS.items() if fmt in FORMATS
)


def readable(fmt: str) -> bool:
    """Whether this install can open Pillow format ``fmt`` (``HEIF`` needs pillow-heif)."""
    return fmt in FORMATS
