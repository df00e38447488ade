"""Rebuilding the index: in the background when the collection outgrows it, without losing what
is stored meanwhile. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import faiss
from sqlalchemy import func, select, update

from core.schema import Image, IndexChange, IndexCopy
from core.settings import load_settings
from indexer import store
from indexer.sync import sync_index
from indexer.vector_index import VectorIndex
from migrations import get_database

from .commands import run_cli
from .databases import assert_consistent, stored
from .photos import photos_subset, read_labels_jsonl
from .waiting import wait_until


def index_status(home: Path, env: dict[str, str]) -> dict:
    rows = json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)
    assert len(rows) == 1
    return rows[0]


def more_photos(synthetic_photos: Path, folder: Path, start: int, stop: int) -> Path:
    """Photos ``start:stop`` of the shared collection (by name) in a folder of their own."""
    folder.mkdir(parents=True)
    for name in sorted(read_labels_jsonl(synthetic_photos))[start:stop]:
        os.link(synthetic_photos / name, folder / name)
    return folder


def test_an_index_that_no_longer_suits_the_collection_is_rebuilt_in_the_background(
        home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "a", 60)), home=home, **env)
    first = index_status(home, env)
    assert (first["kind"], first["size"], first["rebuild_wanted"], first["rebuild"]) == ("flat", 60, None,
                                                                                        {"running": False})
    # The wanted kind changes (as auto's does past 5x10^4 vectors): the job's last merge starts a
    # rebuild in another process; the tagging command does not wait for it.
    hnsw = env | {"TAGSCOPE_INDEX_KIND": "hnsw"}
    assert "want a hnsw index" in index_status(home, hnsw)["rebuild_wanted"]
    run_cli("tag", str(more_photos(synthetic_photos, tmp_path / "b", 60, 80)), home=home, **hnsw)
    done = wait_until(lambda: (lambda r: r["kind"] == "hnsw" and not r["rebuild"]["running"] and r)(
        index_status(home, env)), timeout=120, every=0.5)
    record = done["rebuild"]
    assert record["state"] == "done" and "want a hnsw index" in record["reason"]
    assert record["pid"] not in (None, os.getpid()) and record["asked"] == "hnsw"
    assert (done["size"], done["stored_embeddings"], done["fresh"]) == (80, 80, True)
    assert assert_consistent(url) == 80
    ids, _ = stored(url)
    index = VectorIndex.open(home / "index", done["version"], done["dim"])
    assert sorted(faiss.vector_to_array(index.index.id_map).tolist()) == ids.tolist()
    hits = json.loads(run_cli("search", "red circle", "--json", home=home, **env).stdout)["results"]
    assert len(hits) == 20
    # The kind asked for sticks under auto; `--kind auto` hands the choice back.
    assert index_status(home, env)["rebuild_wanted"] is None
    run_cli("index", "rebuild", "--kind", "auto", home=home, **env)
    back = index_status(home, env)
    assert (back["kind"], back["size"], back["rebuild"]["asked"], back["rebuild_wanted"]) == ("flat", 80, "auto", None)
    log = (home / "index" / f"{done['version']}.rebuild.log").read_text()
    assert "rebuilt as IDMap,HNSW32,SQ8 with 80 vectors" in log


def test_every_copy_follows_the_log_and_entries_go_only_when_all_have_them(home_env, synthetic_photos, tmp_path):
    """Two copies of one version's index (two machines' folders) on one database: each applies
    the change log from its own position, neither consumes the other's entries, the log is
    trimmed to the slowest live copy, and a copy left behind the trimmed log rebuilds."""
    from indexer import log as index_log

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "a", 30)), home=home, **env)
    a = load_settings(environ={}, home=str(home), database_url=url)
    b = a.replace(index_folder=str(tmp_path / "machine-b" / "index"))
    db = get_database(url)
    mv = store.find_version(db, index_status(home, env)["version"])

    def entries() -> int:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(IndexChange)) or 0)

    assert sync_index(b, db, mv) == 30  # a new machine builds its copy from the store
    with db.session() as s:
        changed = s.scalars(select(Image.id).order_by(Image.id).limit(5)).all()
        store.mark_images_changed(s, changed)
    assert entries() == 5
    assert sync_index(a, db, mv) == 5
    assert entries() == 5, "B has not applied them: they stay"
    assert not index_status(home, {**env, "TAGSCOPE_INDEX_FOLDER": str(b.index_dir)})["fresh"]
    assert sync_index(b, db, mv) == 5
    assert entries() == 0 and index_log.floor(db, mv.id) == index_log.head(db, mv.id)
    assert sync_index(a, db, mv) == 0 and sync_index(b, db, mv) == 0
    # B goes silent for longer than the log keeps entries for it; A trims past B's position
    with db.session() as s:
        store.mark_images_changed(s, changed[:2])
    with db.session() as s:
        s.execute(update(IndexCopy).where(IndexCopy.name == index_log.copy_name(b.index_dir))
                  .values(seen_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    assert sync_index(a, db, mv) == 2 and entries() == 0
    assert sync_index(b, db, mv) == 30  # behind the floor: rebuilt from the store
    assert index_status(home, {**env, "TAGSCOPE_INDEX_FOLDER": str(b.index_dir)})["fresh"]


def test_a_rebuild_applies_what_changed_while_it_read_the_store(home_env, synthetic_photos, tmp_path, monkeypatch):
    """The rebuild notes the log's head before it reads the store and applies every later entry
    before it swaps: a photo dropped while the store was being read is not in the new index."""
    from indexer import log as index_log
    from indexer.rebuild import rebuild_index

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "a", 20)), home=home, **env)
    settings = load_settings(environ={}, home=str(home), database_url=url)
    db = get_database(url)
    mv = store.find_version(db, index_status(home, env)["version"])
    with db.session() as s:
        victim = s.scalar(select(Image.id).order_by(Image.id))
    scan = store.scan

    def scan_then_drop(*args, **kwargs):
        for chunk in scan(*args, **kwargs):
            yield chunk
            with db.session() as s:  # tagging goes on: the photo's embedding is dropped
                store.drop(s, [victim])

    monkeypatch.setattr(store, "scan", scan_then_drop)
    assert rebuild_index(settings, db, mv) == 19
    index = VectorIndex.open(settings.index_dir, mv.version, mv.dim)
    assert not index.contains(victim) and index.position == index_log.head(db, mv.id)
