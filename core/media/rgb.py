"""Any Pillow mode to 8-bit RGB, the one form the model sees.

Transparent pixels are composited onto white, 16-bit and float greyscale is scaled (not clipped)
to 8 bits, CMYK, palette and the rest convert as Pillow does.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Transparent pixels are composited onto white: most transparent photos/cut-outs/logos are made
#: for a white page, and a fixed colour keeps embeddings of the same file reproducible.
BACKGROUND_RGB: tuple[int, int, int] = (255, 255, 255)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


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
