"""Tests for core.files: the directory walk over real folders (links, loops, sidecars, odd names)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from core.files import SIDECAR_EXTENSIONS, FoundFile, walk_files
from core.media.formats import IMAGE_EXTENSIONS
from tests.unprivileged import as_unprivileged
from tests.weird_images import (
    noise_jpeg,
)


def _rel(root: Path, found: FoundFile) -> str:
    return Path(os.path.relpath(found.path, root)).as_posix()


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
        found, warnings_seen = as_unprivileged(_walk_names_with_warnings, str(root))
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


def test_extension_sets_hold_what_pillow_reads_and_common_sidecars() -> None:
    assert {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".jfif"} <= IMAGE_EXTENSIONS
    assert {".heic", ".heif", ".avif"} <= IMAGE_EXTENSIONS  # pillow-heif (a dependency) and Pillow's own AVIF
    assert {".xmp", ".aae", ".thm", ".ini", ".db", ".ds_store", ".json", ".lrv"} <= SIDECAR_EXTENSIONS
    assert not IMAGE_EXTENSIONS & SIDECAR_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS | SIDECAR_EXTENSIONS)
