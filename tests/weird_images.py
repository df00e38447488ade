"""Builds a folder of unusual-but-valid, broken and to-be-ignored files for the image I/O tests.

Everything is generated (no binary fixtures in the repository) and tiny, so building the whole
collection takes a few milliseconds.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)

#: The non-UTF-8 file name, as bytes and as the surrogate-escaped str os.fsdecode makes of it.
NON_UTF8_NAME = b"caf\xe9.png"
NON_UTF8_STR = os.fsdecode(NON_UTF8_NAME)


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _halves(
    size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB"
) -> Image.Image:
    """An image whose left half is `left` and right half is `right`."""
    img = Image.new(mode, size, left)
    img.paste(Image.new(mode, (size[0] - size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return img


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (1-bit grey) but whose IDAT holds a single row.

    Only the header matters: a decoder that respects pixel limits must refuse it before it
    allocates anything, and one that does not would fail on the missing rows anyway.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + bytes((width + 7) // 8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(row))
        + _png_chunk(b"IEND", b"")
    )


def noise_jpeg(size: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """A JPEG of random pixels (noise compresses badly, so half the file is well inside the scan data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return _encode(Image.fromarray(pixels), "JPEG", quality=90)


def _valid_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    # C=0, M=Y=255, K=0 is red; Pillow writes it as an Adobe (inverted) CMYK JPEG.
    files["cmyk.jpg"] = _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    files["grey.png"] = _encode(Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))), "PNG")
    gradient16 = np.linspace(0, 65535, 64 * 16).round().astype(np.uint16).reshape(16, 64)
    files["grey16.png"] = _encode(Image.fromarray(gradient16), "PNG")  # mode I;16, saved 16-bit
    checker = (np.indices((16, 16)).sum(axis=0) % 2).astype(bool)
    files["bilevel.png"] = _encode(Image.fromarray(checker), "PNG")  # mode '1'

    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0] + list(BLUE) + [0, 0, 0] * 254)
    palette.paste(1, (8, 0, 16, 16))
    files["palette_transparent.png"] = _encode(palette, "PNG", transparency=0)  # left half transparent

    files["rgba.png"] = _encode(_halves((16, 16), (255, 0, 0, 0), (*GREEN, 255), "RGBA"), "PNG")
    files["grey_alpha.png"] = _encode(_halves((16, 16), (0, 0), (0, 255), "LA"), "PNG")

    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, GREEN, BLUE)]
    files["animated.gif"] = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    files["animated.webp"] = _encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True
    )
    files["still.webp"] = _encode(Image.new("RGB", (24, 16), GREEN), "WEBP", lossless=True)
    files["photo.tif"] = _encode(Image.new("RGB", (24, 16), BLUE), "TIFF")
    files["photo.bmp"] = _encode(Image.new("RGB", (24, 16), RED), "BMP")
    files["tiny.png"] = _encode(Image.new("RGB", (1, 1), GREEN), "PNG")

    # Stored 40x20, left half red; orientation 6 means "rotate 90 degrees clockwise to display",
    # so it displays as 20x40 with red on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    files["rotated.jpg"] = _encode(_halves((40, 20), RED, BLUE), "JPEG", quality=95, exif=exif.tobytes())
    files["PHOTO.JPG"] = _encode(Image.new("RGB", (16, 16), RED), "JPEG")
    files["nested/deeper/inner.png"] = _encode(Image.new("RGB", (8, 8), BLUE), "PNG")
    return files


def _broken_files() -> dict[str, bytes]:
    jpeg = noise_jpeg()
    return {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "notes.jpg": b"Shopping list:\n- milk\n- a better photo tagger\n",
        "bomb.png": png_header_only(30000, 30000),
        "random.png": random.Random(1234).randbytes(4096),
    }


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_weird_collection(root: Path) -> dict[str, list[str]]:
    """Write the collection under `root` and describe it.

    Returns ``{"valid": [...], "broken": [...], "ignored": [...]}`` of paths relative to `root`
    (``/``-separated; the non-UTF-8 name as its surrogate-escaped str). "valid" files must decode,
    "broken" ones must be yielded by the walk but fail to decode, "ignored" ones must never be
    yielded. The non-UTF-8 name is left out only if the filesystem refuses it.
    """
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, list[str]] = {"valid": [], "broken": [], "ignored": []}

    for rel, data in _valid_files().items():
        _write(root, rel, data)
        manifest["valid"].append(rel)

    # A name that is not UTF-8 (Latin-1 "café"), made through the bytes API as a camera card or
    # an old Samba share would.
    try:
        fd = os.open(
            os.path.join(os.fsencode(root), NON_UTF8_NAME), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
        )
    except OSError:
        pass  # e.g. a filesystem that enforces UTF-8 names; the tests check for this and skip
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_encode(Image.new("RGB", (8, 8), RED), "PNG"))
        manifest["valid"].append(NON_UTF8_STR)

    os.symlink("tiny.png", root / "link_to_tiny.png")
    manifest["valid"].append("link_to_tiny.png")

    for rel, data in _broken_files().items():
        _write(root, rel, data)
        manifest["broken"].append(rel)

    _write(root, ".hidden.jpg", _encode(Image.new("RGB", (8, 8), RED), "JPEG"))
    _write(root, "IMG_0001.xmp", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>\n')
    os.symlink(".", root / "nested" / "loop")
    manifest["ignored"] += [".hidden.jpg", "IMG_0001.xmp", "nested/loop"]
    return manifest
