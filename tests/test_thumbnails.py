"""Tests for core.media.read.thumbnail: JPEG thumbnails of every kind of file, rotated, never enlarged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from core.media.errors import ImageDecodeError
from core.media.read import thumbnail as make_thumbnail
from tests.weird_images import RED, noise_jpeg


def _thumb(data: bytes) -> Image.Image:
    thumb = Image.open(io.BytesIO(data))
    thumb.load()
    return thumb


def test_thumbnail_is_jpeg(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    data = make_thumbnail(str(root / "rgba.png"), size=8)
    assert data[:3] == b"\xff\xd8\xff"
    thumb = _thumb(data)
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (8, 8))


def test_thumbnail_longest_side_and_orientation(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(noise_jpeg((1200, 600)))
    assert _thumb(make_thumbnail(str(path))).size == (256, 128)
    assert _thumb(make_thumbnail(str(path), size=100)).size == (100, 50)


def test_thumbnail_applies_exif_rotation(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    thumb = _thumb(make_thumbnail(str(root / "rotated.jpg"), size=20))
    assert thumb.size == (10, 20)
    assert all(abs(a - b) <= 40 for a, b in zip(thumb.getpixel((5, 2)), RED))


def test_thumbnail_does_not_enlarge_small_images(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert _thumb(make_thumbnail(str(root / "tiny.png"))).size == (1, 1)


def test_thumbnail_of_broken_file_raises_decode_error(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    with pytest.raises(ImageDecodeError, match="truncated"):
        make_thumbnail(str(root / "truncated.jpg"))
    with pytest.raises(ValueError):
        make_thumbnail(str(root / "tiny.png"), size=0)
