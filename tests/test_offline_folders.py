"""An unmounted drive is not a deleted library, and a file that comes back keeps its results
(tagger/missing.py), through the real ``tagscope tag`` on a real tagged collection."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from .commands import run_cli
from .photos import photos_subset

N = 24


ENV: dict[str, str] = {}  # the database of the test running (home_env): set by the fixture


def status(home: Path) -> dict:
    return json.loads(run_cli("status", "--json", home=home, **ENV).stdout)


def tag(home: Path, photos: Path, *options: str):
    return run_cli("tag", str(photos), "--model", "synthetic", *options, home=home, **ENV)


def stored(home: Path) -> dict[str, tuple[str, list[tuple[int, float]]]]:
    """Each image's (status, [(label id, score)]) straight from the database, by path."""
    engine = create_engine(ENV.get("TAGSCOPE_DATABASE_URL") or f"sqlite:///{home / 'tagscope.sqlite'}")
    try:
        with engine.connect() as db:
            tags = db.execute(text("SELECT image_id, label_id, score FROM tags")).all()
            return {path: (st, sorted((lab, score) for image_id, lab, score in tags if image_id == i))
                    for i, path, st in db.execute(text("SELECT id, path, status FROM images"))}
    finally:
        engine.dispose()


def move_all(source: Path, target: Path, names: list[str] | None = None) -> None:
    """Move files (their mtimes travel with them: a drive unplugged and plugged back)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names if names is not None else [p.name for p in source.iterdir()]:
        (source / name).rename(target / name)


def unplugged_and_back(home: Path, photos: Path, folder: Path, count: int, parked: Path) -> None:
    """``folder`` (``count`` photos, under the tagged ``photos``) emptied as an unplugged drive
    leaves its mount point: tagging ``photos`` leaves its photos as they were and warns; plugged
    back, nothing is done."""
    results = stored(home)
    move_all(folder, parked)
    out = tag(home, photos)
    assert f"{folder} holds no photos now but {count} registered ones are under it: left as they were" in out.stderr
    assert "--empty-ok" in out.stderr and "marked missing" not in out.stderr, out.stderr
    after = status(home)
    assert after["images"]["missing"] == 0 and after["images"]["tagged"] == N and after["index"]["size"] == N
    assert stored(home) == results
    shows_the_warning(home, 2, f"{folder} holds no photos now but {count} registered ones are under it")
    move_all(parked, folder)
    out = tag(home, photos)
    assert f"found {N} files: 0 new, 0 changed, {N} unchanged" in out.stderr
    assert "0 processed this run" in out.stdout and stored(home) == results


@pytest.fixture
def library(tmp_path, synthetic_photos, home_env) -> Iterator[tuple[Path, Path]]:
    """(photos, home): N photos copied (own inodes and mtimes), tagged once; SQLite and PostgreSQL."""
    home, env, _url = home_env
    ENV.clear()
    ENV.update({k: v for k, v in env.items() if k == "TAGSCOPE_DATABASE_URL"})
    photos = tmp_path / "library"
    shutil.copytree(photos_subset(synthetic_photos, tmp_path / "subset", N), photos)
    tag(home, photos)
    yield photos, home
    ENV.clear()


def test_an_empty_folder_is_taken_for_an_unmounted_drive(library, tmp_path):
    photos, home = library
    before = status(home)
    assert before["images"]["tagged"] == N and before["index"]["size"] == N
    unplugged_and_back(home, photos, photos, N, tmp_path / "unplugged")  # the mount point stays, empty
    move_all(photos, tmp_path / "deleted")  # really emptied: --empty-ok marks them missing
    out = tag(home, photos, "--empty-ok")
    assert f"{N} registered files are no longer there: marked missing" in out.stderr
    gone = status(home)
    assert gone["images"]["missing"] == N and gone["index"]["size"] == 0


def test_missing_files_that_come_back_unchanged_keep_their_results(library, tmp_path):
    """Moved away, the files are missing (out of search); moved back with the same size and mtime,
    their tags and embeddings are restored without the model: the run tags nothing."""
    photos, home = library
    copy = photos / "copy-of-first.png"  # a byte-identical copy: a duplicate of its original
    first = sorted(p for p in photos.iterdir() if p.suffix == ".png")[0]
    shutil.copy2(first, copy)
    tag(home, photos)
    results = stored(home)
    assert results[str(copy)][0] == "duplicate"
    away = [copy.name, *sorted(p.name for p in photos.iterdir() if p.suffix == ".png" and p not in (first, copy))[:4]]
    move_all(photos, tmp_path / "elsewhere", away)
    out = tag(home, photos)
    assert "5 registered files are no longer there: marked missing" in out.stderr
    assert status(home)["index"]["size"] == N - 4  # four tagged ones left the index (the duplicate has none)
    move_all(tmp_path / "elsewhere", photos, away)
    out = tag(home, photos)
    assert "5 missing files are back unchanged: their tags and embeddings restored" in out.stderr
    assert "0 processed this run" in out.stdout, out.stdout
    assert stored(home) == results  # statuses (the duplicate's too) and every tag as before
    back = status(home)
    assert back["images"]["missing"] == 0 and back["index"]["size"] == N and back["images"]["duplicates"] == 1


def test_a_missing_file_back_with_other_bytes_is_tagged_again(library, tmp_path):
    photos, home = library
    target = sorted(p for p in photos.iterdir() if p.suffix == ".png")[3]
    kept = target.read_bytes()
    move_all(photos, tmp_path / "elsewhere", [target.name])
    tag(home, photos)
    target.write_bytes(kept)  # back with a new mtime: its bytes may differ, so the model runs
    out = tag(home, photos)
    assert "1 changed" in out.stderr and "1 processed this run" in out.stdout
    assert status(home)["index"]["size"] == N


def shows_the_warning(home: Path, job_id: int, warning: str) -> None:
    """The job keeps its scan's warning: `tagscope jobs show`, the API (as its schema says) and the
    jobs page say it, where a scheduled run's user looks."""
    from core.settings import load_settings
    from web import create_app

    from .test_openapi import check

    assert f"  warning: {warning}" in run_cli("jobs", "show", str(job_id), home=home, **ENV).stdout
    settings = load_settings(environ=dict(ENV), home=str(home), model="synthetic")
    client = create_app(settings, {"TESTING": True}).test_client()
    job = client.get(f"/api/jobs/{job_id}").get_json()
    assert len(job["warnings"]) == 1 and job["warnings"][0].startswith(warning)
    check(client.get("/api/openapi.json").get_json(), job, "Job")
    page = client.get("/jobs").get_data(as_text=True)
    assert f'<span class="job-warning">{warning}' in page
    assert client.get("/api/jobs/1").get_json()["warnings"] == []  # the first run found its photos


@pytest.fixture
def nested(tmp_path, synthetic_photos, home_env) -> Iterator[tuple[Path, Path, dict[str, list[str]]]]:
    """(photos, home, {subfolder: names}): N photos, 10 of them under photos/nas (a share mounted
    there: nas/2023/trip and nas/2024) and 4 in photos/old, tagged once; SQLite and PostgreSQL."""
    home, env, _url = home_env
    ENV.clear()
    ENV.update({k: v for k, v in env.items() if k == "TAGSCOPE_DATABASE_URL"})
    photos = tmp_path / "library"
    shutil.copytree(photos_subset(synthetic_photos, tmp_path / "subset", N), photos)
    names = sorted(p.name for p in photos.iterdir())
    layout = {"nas/2023/trip": names[:6], "nas/2024": names[6:10], "old": names[10:14]}
    for folder, moved in layout.items():
        move_all(photos, photos / folder, moved)
    tag(home, photos)
    yield photos, home, layout
    ENV.clear()


def test_an_empty_folder_under_the_path_is_taken_for_an_unmounted_drive(nested, tmp_path):
    """~/Pictures/nas unmounted (its mount point empty) while ~/Pictures holds other photos: the
    share's photos stay tagged, with the warning; --empty-ok marks them missing."""
    photos, home, _layout = nested
    nas = photos / "nas"
    assert status(home)["images"]["tagged"] == N
    unplugged_and_back(home, photos, nas, 10, tmp_path / "share")  # unmounted: the mount point stays, empty
    move_all(nas, tmp_path / "deleted")  # the subfolder really emptied: --empty-ok marks its photos missing
    out = tag(home, photos, "--empty-ok")
    assert "10 registered files are no longer there: marked missing" in out.stderr
    gone = status(home)
    assert gone["images"]["missing"] == 10 and gone["index"]["size"] == N - 10


def test_a_link_to_a_gone_drive_is_offline_and_a_deleted_folder_is_missing(nested, tmp_path):
    """A folder that is a link to a drive's mount folder (removed when the drive is unplugged)
    keeps its photos, with the warning; a folder deleted outright marks its photos missing."""
    photos, home, layout = nested
    drive = tmp_path / "media" / "usb"
    move_all(photos / "nas", drive)
    (photos / "nas").rmdir()
    (photos / "nas").symlink_to(drive, target_is_directory=True)  # the share through a link, same paths
    out = tag(home, photos)
    assert f"found {N} files: 0 new, 0 changed, {N} unchanged" in out.stderr, out.stderr
    results = stored(home)
    drive.rename(tmp_path / "media" / "away")  # unplugged: the link dangles
    shutil.rmtree(photos / "old")  # deleted: nothing of it is left
    out = tag(home, photos)
    assert f"{photos / 'nas'} holds no photos now but 10 registered ones are under it: left as they were" \
        in out.stderr, out.stderr
    assert "4 registered files are no longer there: marked missing" in out.stderr
    after = status(home)
    assert after["images"]["missing"] == 4 and after["images"]["tagged"] == N - 4
    now = stored(home)
    old = {str(photos / "old" / name) for name in layout["old"]}
    assert {p: r for p, r in now.items() if p not in old} == {p: r for p, r in results.items() if p not in old}
    assert {now[p][0] for p in old} == {"missing"}
