"""Tests for core.files and core.images: the directory walk and robust image decoding, on real files."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import logging
import multiprocessing
import os
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from core.files import SIDECAR_EXTENSIONS, FoundFile, display_path, walk_files
from core.images import (
    BACKGROUND_RGB,
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    ImageInfo,
    image_from_bytes,
    make_thumbnail,
    read_image,
)
from tests.weird_images import (
    BLUE,
    GREEN,
    NON_UTF8_STR,
    RED,
    noise_jpeg,
    png_header_only,
    write_weird_collection,
)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("weird")
    return root, write_weird_collection(root)


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


# --------------------------------------------------------------------------- walk


def test_walk_yields_every_valid_and_broken_file_once(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, manifest = collection
    found = [_rel(root, f) for f in walk_files([root])]
    assert sorted(found) == sorted(manifest["valid"] + manifest["broken"])
    assert len(found) == len(set(found))


def test_walk_never_yields_hidden_sidecar_or_loop_entries(
    collection: tuple[Path, dict[str, list[str]]],
) -> None:
    root, manifest = collection
    found = {_rel(root, f) for f in walk_files([root])}
    assert not found & set(manifest["ignored"])
    assert not any(part.startswith(".") for rel in found for part in rel.split("/"))
    assert not any(rel.startswith("nested/loop/") for rel in found)


def test_walk_survives_symlink_loop(
    collection: tuple[Path, dict[str, list[str]]], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = collection
    result: list[FoundFile] = []
    # Run in a thread so a regression (an endless walk) fails the test instead of hanging the run.
    with caplog.at_level(logging.WARNING, logger="core.files"):
        worker = threading.Thread(target=lambda: result.extend(walk_files([root / "nested"])), daemon=True)
        worker.start()
        worker.join(timeout=10)
    assert not worker.is_alive(), "walk_files did not terminate on a symlink loop"
    assert [_rel(root, f) for f in result] == ["nested/deeper/inner.png"]
    assert any("loop" in record.getMessage() for record in caplog.records)


def test_walk_is_sorted_by_name_within_each_directory(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    first = [f.path for f in walk_files([root])]
    assert first == [f.path for f in walk_files([root])]
    top_level = [Path(p).name for p in first if Path(p).parent == root]
    assert top_level == sorted(top_level)


def test_walk_reports_size_and_mtime(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    by_rel = {_rel(root, f): f for f in walk_files([root])}
    st = os.stat(root / "photo.bmp")
    assert by_rel["photo.bmp"].size == st.st_size > 0
    assert by_rel["photo.bmp"].mtime == st.st_mtime
    assert by_rel["empty.jpg"].size == 0
    # A symlinked file reports its target's size.
    assert by_rel["link_to_tiny.png"].size == by_rel["tiny.png"].size


def test_walk_yields_absolute_paths_for_relative_roots(
    collection: tuple[Path, dict[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = collection
    monkeypatch.chdir(root)
    paths = [f.path for f in walk_files(["nested"])]
    assert paths == [str(root / "nested" / "deeper" / "inner.png")]


def test_walk_accepts_a_single_file_root(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert [f.path for f in walk_files([root / "tiny.png"])] == [str(root / "tiny.png")]


def test_walk_yields_each_path_once_for_overlapping_roots(
    collection: tuple[Path, dict[str, list[str]]],
) -> None:
    root, manifest = collection
    roots = [root / "nested", root / "tiny.png", root, str(root), root / "nested" / "deeper"]
    found = [_rel(root, f) for f in walk_files(roots)]
    assert sorted(found) == sorted(manifest["valid"] + manifest["broken"])


def test_walk_without_follow_symlinks_ignores_links(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, manifest = collection
    found = {_rel(root, f) for f in walk_files([root], follow_symlinks=False)}
    assert "link_to_tiny.png" not in found
    assert found == set(manifest["valid"] + manifest["broken"]) - {"link_to_tiny.png"}


def test_walk_follows_symlinked_directories_without_deduplicating(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(noise_jpeg())
    os.symlink("real", tmp_path / "alias")
    found = [_rel(tmp_path, f) for f in walk_files([tmp_path])]
    assert found == ["alias/a.jpg", "real/a.jpg"]


def test_walk_skips_broken_symlink_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "ok.jpg").write_bytes(noise_jpeg())
    os.symlink("gone.jpg", tmp_path / "dangling.jpg")
    with caplog.at_level(logging.WARNING, logger="core.files"):
        found = [_rel(tmp_path, f) for f in walk_files([tmp_path])]
    assert found == ["ok.jpg"]
    assert any(
        "broken symbolic link" in r.getMessage() and "dangling.jpg" in r.getMessage() for r in caplog.records
    )


def _as_unprivileged(fn, *args):
    """Run ``fn(*args)`` in a child that cannot bypass file permissions (root drops to nobody)."""
    import multiprocessing

    def child(conn, *a):
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        try:
            conn.send(("ok", fn(*a)))
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            conn.send(("error", repr(exc)))

    ctx = multiprocessing.get_context("fork")
    parent, sub = ctx.Pipe()
    proc = ctx.Process(target=child, args=(sub, *args))
    proc.start()
    status, value = parent.recv()
    proc.join()
    assert status == "ok", value
    return value


def _walk_names_with_warnings(root: str) -> tuple[list[str], list[str]]:
    import logging as _logging

    records: list[str] = []

    class Grab(_logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = _logging.getLogger("core.files")
    handler = Grab(level=_logging.WARNING)
    logger.addHandler(handler)
    try:
        return [os.path.relpath(f.path, root) for f in walk_files([root])], records
    finally:
        logger.removeHandler(handler)


def test_walk_skips_unreadable_directory_with_warning() -> None:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="tagscope-perm-"))
    try:
        root.chmod(0o755)
        (root / "ok.jpg").write_bytes(noise_jpeg())
        (root / "ok.jpg").chmod(0o644)
        locked = root / "locked"
        locked.mkdir()
        (locked / "secret.jpg").write_bytes(noise_jpeg())
        locked.chmod(0)
        found, warnings_seen = _as_unprivileged(_walk_names_with_warnings, str(root))
        assert found == ["ok.jpg"]
        assert any("unreadable directory" in m for m in warnings_seen)
    finally:
        (root / "locked").chmod(0o755)
        shutil.rmtree(root)


def test_walk_skips_fifos(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "ok.jpg").write_bytes(noise_jpeg())
    assert [_rel(tmp_path, f) for f in walk_files([tmp_path])] == ["ok.jpg"]


def test_missing_root_raises_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    # Raised by the call itself, before iteration starts.
    with pytest.raises(FileNotFoundError, match="does not exist") as excinfo:
        walk_files([tmp_path, missing])
    assert str(missing) in str(excinfo.value)


def test_broken_symlink_root_raises_clear_error(tmp_path: Path) -> None:
    os.symlink("nowhere", tmp_path / "dangling")
    with pytest.raises(FileNotFoundError, match="broken symbolic link"):
        walk_files([tmp_path / "dangling"])


def test_upper_case_extension_counts_as_an_image(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    found = {_rel(root, f) for f in walk_files([root])}
    assert "PHOTO.JPG" in found
    assert Path("PHOTO.JPG").suffix.lower() in IMAGE_EXTENSIONS
    image, info = _decode(root, "PHOTO.JPG")
    assert info.format == "JPEG" and _close(image.getpixel((8, 8)), RED)


def test_extension_sets_hold_what_pillow_reads_and_common_sidecars() -> None:
    assert {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".jfif"} <= IMAGE_EXTENSIONS
    assert ".heic" not in IMAGE_EXTENSIONS
    assert {".xmp", ".aae", ".thm", ".ini", ".db", ".ds_store", ".json", ".lrv"} <= SIDECAR_EXTENSIONS
    assert not IMAGE_EXTENSIONS & SIDECAR_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS | SIDECAR_EXTENSIONS)


# --------------------------------------------------------------------------- decoding valid files


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


def test_decompression_bomb_rejected_from_header(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    start = time.perf_counter()
    reason = _reason(root / "bomb.png")
    assert time.perf_counter() - start < 1.0
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
        assert _as_unprivileged(_reason, path).startswith("cannot read file: Permission denied")
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


# --------------------------------------------------------------------------- thumbnails


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
    assert _close(thumb.getpixel((5, 2)), RED, tolerance=40)


def test_thumbnail_does_not_enlarge_small_images(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    assert _thumb(make_thumbnail(str(root / "tiny.png"))).size == (1, 1)


def test_thumbnail_of_broken_file_raises_decode_error(collection: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = collection
    with pytest.raises(ImageDecodeError, match="truncated"):
        make_thumbnail(str(root / "truncated.jpg"))
    with pytest.raises(ValueError):
        make_thumbnail(str(root / "tiny.png"), size=0)
