"""Decompression bombs: an image over ``max_pixels`` is refused from its header, before any pixel
is decoded, with a reason that says which limit it broke and how to lift it.

Our limit (the ``max_pixels`` setting, :data:`core.settings.DEFAULT_MAX_PIXELS` by default) is the
caller's, never Pillow's process-wide ``Image.MAX_IMAGE_PIXELS``; Pillow's own hard error at twice
its limit still applies and is named as such.
"""

from __future__ import annotations

from PIL import Image

from core.media.errors import ImageDecodeError


def bomb_reason(pixels: int | None, max_pixels: int) -> str:
    """The reason for refusing an image of ``pixels`` (None: unknown, over the limit)."""
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
    """Raise :class:`ImageDecodeError` when an image of ``size`` is over ``max_pixels``."""
    pixels = size[0] * size[1]
    if pixels > max_pixels:
        raise ImageDecodeError(bomb_reason(pixels, max_pixels))
