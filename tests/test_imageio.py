"""Tests for core.media.stills: robust image decoding and thumbnails, on real files."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import multiprocessing
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from core.files import FoundFile, display_path, walk_files
from core.media.errors import ImageDecodeError
from core.media.rgb import BACKGROUND_RGB
from core.media.stills import ImageInfo, image_from_bytes, read_image
from tests.unprivileged import as_unprivileged
from tests.weird_images import (
    BLUE,
    GREEN,
    NON_UTF8_STR,
    RED,
    noise_jpeg,
    png_header_only,
)


def _rel(root: Path, found: FoundFile) -> str:
    return Path(os.path.relpath(found.path, root)).as_posix()


def _decode(root: Path, rel: str) -> tuple[Image.Image, ImageInfo]:
    image, info, _ = read_image(str(root / rel))
    return image, info


def _close(colour: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def _reason(path: str | Path, **kwargs: int) -> str:
    with pytest.raises(ImageDecodeError) as excinfo:
        read_image(str(path), **kwargs)
    return excinfo.value.reason


# --------------------------------------------------------------------------- decoding valid files


def test_an_upper_case_extension_decodes_like_any_other(collection: tuple[Path, dict[str, list[str]]]) -> None:
    image, info = _decode(collection[0], "PHOTO.JPG")
    assert info.format == "JPEG" and _close(image.getpixel((8, 8)), RED)


def test_every_valid_file_decodes_to_rgb(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, manifest = collection
    for rel in manifest["valid"]:
        image, info = _decode(root, rel)
        assert image.mode == "RGB", rel
        assert (info.width, info.height) == image.size, rel
        assert info.frames >= 1, rel


def test_cmyk_jpeg_decodes_to_rgb(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "cmyk.jpg")
    assert info.mode == "CMYK" and info.format == "JPEG"
    # Red, not its inverse (cyan): Adobe CMYK JPEGs store inverted values.
    assert _close(image.getpixel((16, 16)), RED)


def test_greyscale_png_becomes_neutral_rgb(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "grey.png")
    assert info.mode == "L"
    arr = np.asarray(image)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    assert arr[..., 0].min() == 0 and arr[..., 0].max() == 252


def test_16bit_png_keeps_its_range(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "grey16.png")
    assert info.mode.startswith("I")
    grey = np.asarray(image)[..., 0].astype(int).ravel()
    assert grey.min() <= 2 and grey.max() >= 253
    # Scaled, not clipped: a clipped gradient would be 255 for all but its first 1/257th.
    assert (grey == 255).mean() < 0.05
    assert 100 <= np.median(grey) <= 155
    assert (np.diff(grey) >= 0).all(), "the gradient must stay monotonic"


def test_one_bit_png_is_black_and_white(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "bilevel.png")
    assert info.mode == "1"
    assert set(np.unique(np.asarray(image))) == {0, 255}
    assert image.getpixel((0, 0)) != image.getpixel((1, 0))


def test_palette_transparency_is_composited_on_white(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "palette_transparent.png")
    assert info.mode == "P"
    assert BACKGROUND_RGB == (255, 255, 255)
    assert image.getpixel((2, 8)) == BACKGROUND_RGB  # transparent index, whose colour is black
    assert image.getpixel((12, 8)) == BLUE


def test_rgba_transparency_is_composited_on_white(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "rgba.png")
    assert info.mode == "RGBA"
    assert image.getpixel((2, 8)) == BACKGROUND_RGB  # fully transparent red
    assert image.getpixel((12, 8)) == GREEN


def test_grey_alpha_is_composited_on_white(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "grey_alpha.png")
    assert info.mode == "LA"
    assert image.getpixel((2, 8)) == BACKGROUND_RGB
    assert image.getpixel((12, 8)) == (0, 0, 0)


def test_half_transparent_pixels_blend_with_white() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 128)).save(buf, format="PNG")
    image, _ = image_from_bytes(buf.getvalue())
    assert _close(image.getpixel((1, 1)), (127, 127, 127), tolerance=2)


@pytest.mark.parametrize("name", ["animated.gif", "animated.webp"])
def test_animation_uses_first_frame(collection: tuple[Path, dict[str, list[str]]], name: str) -> None:
    root, _ = collection
    image, info = _decode(root, name)
    assert info.frames == 3
    assert _close(image.getpixel((8, 8)), RED)


def test_animated_gif_uses_first_frame(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "animated.gif")
    assert (info.format, info.frames) == ("GIF", 3)
    assert image.getpixel((0, 0)) == RED


@pytest.mark.parametrize(
    ("name", "fmt", "colour", "size"),
    [
        ("still.webp", "WEBP", GREEN, (24, 16)),
        ("photo.tif", "TIFF", BLUE, (24, 16)),
        ("photo.bmp", "BMP", RED, (24, 16)),
        ("tiny.png", "PNG", GREEN, (1, 1)),
    ],
)
def test_plain_formats_decode_with_their_colour(
    collection: tuple[Path, dict[str, list[str]]],
    name: str,
    fmt: str,
    colour: tuple[int, int, int],
    size: tuple[int, int],
) -> None:
    root, _ = collection
    image, info = _decode(root, name)
    assert (info.format, info.frames, image.size) == (fmt, 1, size)
    assert image.getpixel((0, 0)) == colour


def test_exif_rotation_swaps_width_and_height(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    image, info = _decode(root, "rotated.jpg")
    assert (info.width, info.height) == (20, 40) == image.size
    # Stored left half red; orientation 6 (rotate clockwise) puts it on top.
    assert _close(image.getpixel((10, 5)), RED)
    assert _close(image.getpixel((10, 35)), BLUE)


def test_symlinked_file_decodes_like_its_target(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert read_image(str(root / "link_to_tiny.png"))[2] == read_image(str(root / "tiny.png"))[2]


def test_read_image_returns_sha256_of_the_file_bytes(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    path = root / "cmyk.jpg"
    _, _, digest = read_image(str(path))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_image_from_bytes_matches_read_image(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    path = root / "rotated.jpg"
    from_file, info_file, _ = read_image(path)
    from_bytes, info_bytes = image_from_bytes(path.read_bytes())
    assert info_file == info_bytes
    assert np.array_equal(np.asarray(from_file), np.asarray(from_bytes))


def test_non_utf8_name_is_displayable(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, manifest = collection
    if NON_UTF8_STR not in manifest["valid"]:
        pytest.skip("this filesystem refuses file names that are not UTF-8")
    found = [f.path for f in walk_files([root]) if f.path.endswith(NON_UTF8_STR)]
    assert len(found) == 1
    shown = display_path(found[0])
    shown.encode("utf-8")  # must not raise: safe for logs and PostgreSQL
    assert shown.endswith("caf\\xe9.png")
    image, info, _ = read_image(found[0])
    assert info.format == "PNG" and image.getpixel((0, 0)) == RED


def test_display_path_keeps_valid_unicode_and_escapes_the_rest() -> None:
    assert display_path("/photos/café/日本 1.jpg") == "/photos/café/日本 1.jpg"
    assert display_path(b"/x/caf\xe9.png") == "/x/caf\\xe9.png"
    assert display_path(Path("/x") / os.fsdecode(b"\xff\xfe")) == "/x/\\xff\\xfe"
    assert display_path("a\ud800b\x00c") == "a\\ud800b\\x00c"
    for text in ("a\ud800b", os.fsdecode(b"\xc3(")):
        display_path(text).encode("utf-8")


# --------------------------------------------------------------------------- decoding failures


def test_every_broken_file_fails_with_a_reason(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, manifest = collection
    for rel in manifest["broken"]:
        reason = _reason(root / rel)
        assert reason and "\n" not in reason and len(reason) <= 200, rel


def test_empty_file_fails_with_reason(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert _reason(root / "empty.jpg") == "empty file"


def test_truncated_jpeg_fails_with_reason(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert _reason(root / "truncated.jpg") == "truncated image data"


def test_truncated_png_fails_with_reason() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    with pytest.raises(ImageDecodeError, match="truncated"):
        image_from_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_text_file_named_jpg_is_not_an_image(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert _reason(root / "notes.jpg") == "not an image (unrecognised format)"


def test_random_blob_named_png_is_not_an_image(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert _reason(root / "random.png") == "not an image (unrecognised format)"


def test_corrupt_png_data_fails_with_decode_reason() -> None:
    # Valid header, garbage where the compressed pixels should be.
    data = bytearray(png_header_only(8, 8))
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 8] = b"\x00\x01\x02\x03"
    with pytest.raises(ImageDecodeError) as excinfo:
        image_from_bytes(bytes(data))
    assert excinfo.value.reason.startswith(("cannot decode image:", "truncated"))


def test_decompression_bomb_rejected_from_header(collection: tuple[Path, dict[str, list[str]]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = collection
    decoded = []  # images whose pixels were decoded: none, the header alone says no
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    reason = _reason(root / "bomb.png")
    assert decoded == []
    assert reason.startswith("decompression bomb:")
    assert "900000000 pixels" in reason and "178956970" in reason and "max_pixels" in reason


def test_bomb_between_pillow_limits_fails_without_leaking_a_warning() -> None:
    # 225 Mpx: over Pillow's warning threshold but under its hard error.
    data = png_header_only(15000, 15000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageDecodeError, match="225000000 pixels exceeds the limit of 178956970"):
            image_from_bytes(data)
        # A caller may allow more than Pillow's warning threshold; its own limit is still enforced.
        with pytest.raises(ImageDecodeError, match="225000000 pixels exceeds the limit of 200000000"):
            image_from_bytes(data, max_pixels=200_000_000)


def test_max_pixels_cannot_lift_pillow_hard_limit(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    reason = _reason(root / "bomb.png", max_pixels=10**9)
    assert "hard limit" in reason and "MAX_IMAGE_PIXELS" in reason


def test_max_pixels_applies_to_ordinary_images(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    reason = _reason(root / "cmyk.jpg", max_pixels=1000)
    assert (
        reason == "decompression bomb: 1024 pixels exceeds the limit of 1000 (raise max_pixels to allow it)"
    )
    assert read_image(str(root / "cmyk.jpg"), max_pixels=1024)[1].width == 32


def test_decoding_leaves_pillow_globals_untouched(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, manifest = collection
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    for rel in manifest["valid"] + manifest["broken"]:
        try:
            read_image(str(root / rel), max_pixels=200_000_000)
        except ImageDecodeError:
            pass
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters)) == before


def test_unreadable_paths_fail_with_cannot_read(tmp_path: Path) -> None:
    assert _reason(tmp_path) == "cannot read file: is a directory"
    assert _reason(tmp_path / "missing.jpg").startswith("cannot read file: No such file")
    os.mkfifo(tmp_path / "pipe.jpg")
    assert _reason(tmp_path / "pipe.jpg") == "cannot read file: not a regular file"


def test_permission_denied_fails_with_cannot_read() -> None:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="tagscope-perm-"))
    try:
        root.chmod(0o755)
        path = root / "locked.jpg"
        path.write_bytes(noise_jpeg())
        path.chmod(0)
        assert as_unprivileged(_reason, path).startswith("cannot read file: Permission denied")
    finally:
        shutil.rmtree(root)


def _decode_in_child(path: str) -> tuple[tuple[int, int], str]:
    image, _info, digest = read_image(path)
    return image.size, digest


def test_read_image_works_in_a_spawned_worker_process(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    path = str(root / "rotated.jpg")
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        size, digest = pool.submit(_decode_in_child, path).result(timeout=60)
    assert size == (20, 40)
    assert digest == read_image(path)[2]
