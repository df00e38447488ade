"""PostgreSQL's bulk path (COPY for registration, tags, embeddings and the index log; one UPDATE
over arrays per kind of image row; ``= ANY(array)`` for long id lists: core.pg_copy, core.sql_in)
leaves exactly the rows SQLite's INSERTs and executemany UPDATEs leave, for the same files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select

import core.pg_copy
import indexer.log
import indexer.store
import tagger.batch_store
from bench.library import phone_library
from core.db import Database
from core.pg_copy import can_copy, copy_rows, insert_ids, update_rows
from core.schema import Embedding, Image, IndexChange, Media, Tag, VideoFrame
from core.sql_in import one_of
from migrations import get_database

from .commands import run_cli
from .photos import photos_subset

IMAGE_COLUMNS = ("id", "path", "path_raw", "path_key", "size_bytes", "mtime", "status", "error", "content_hash",
                 "width", "height", "format", "duplicate_of", "model_version_id", "job_id", "stack_key")


def _library(synthetic_photos: Path, root: Path) -> Path:
    """Photos, a phone's and a camera's files, duplicates, files that fail (empty, not an image)
    and names COPY must escape (tab, newline, backslash, quotes, non-UTF-8 bytes)."""
    photos = photos_subset(synthetic_photos, root / "photos", 40)
    phone_library(root / "phone")
    odd = root / "odd"
    odd.mkdir()
    first = sorted(photos.iterdir())[0]
    for name in ("tab\there.png", "new\nline.png", "back\\slash 'quoted' \"twice\".png", "caf\u00e9 \u5199\u771f.png"):
        shutil.copy(first, odd / name)  # the same bytes: duplicates of the first photo
    shutil.copy(first, os.path.join(os.fsencode(odd), b"latin1-\xe9t\xe9.png"))
    for n in range(30):
        (odd / f"empty_{n:02d}.jpg").touch()  # fail at once
    (odd / "not-an-image.jpg").write_bytes(b"%PDF-1.4 not a photo")
    (odd / "notes.txt").write_text("skipped: not a library file")
    return root


def _rows(url: str) -> dict[str, list[tuple]]:
    db = Database(url)
    try:
        with db.session() as s:
            return {
                "images": [tuple(r) for r in s.execute(select(*(getattr(Image, c) for c in IMAGE_COLUMNS))
                                                       .order_by(Image.id))],
                "tags": [tuple(r) for r in s.execute(select(Tag.image_id, Tag.label_id, Tag.model_version_id, Tag.score)
                                                     .order_by(Tag.image_id, Tag.label_id, Tag.model_version_id))],
                "embeddings": [tuple(r) for r in s.execute(select(Embedding.image_id, Embedding.model_version_id,
                                                                  Embedding.vector).order_by(Embedding.image_id))],
                # the log's order is what copies of the index replay: the same entries in the same order
                "index_changes": [tuple(r) for r in s.execute(select(IndexChange.model_version_id,
                                                                     IndexChange.image_id).order_by(IndexChange.id))],
                "media": [tuple(r) for r in s.execute(select(Media.image_id, Media.kind, Media.taken,
                                                             Media.camera_model).order_by(Media.image_id))],
                "video_frames": [tuple(r) for r in s.execute(select(VideoFrame.image_id, VideoFrame.idx,
                                                                    VideoFrame.time_s, VideoFrame.vector)
                                                             .order_by(VideoFrame.image_id, VideoFrame.idx))],
            }
    finally:
        db.dispose()


def _copied_tables(monkeypatch) -> list[str]:
    """The tables the COPY path writes to, in order (every module's own name for it)."""
    seen: list[str] = []
    real = core.pg_copy.copy_rows

    def spy(s, table, rows):
        seen.append(table.name)
        real(s, table, rows)

    for module in (core.pg_copy, tagger.batch_store, indexer.store, indexer.log):
        monkeypatch.setattr(module, "copy_rows", spy)
    return seen


@pytest.mark.slow
def test_the_copy_path_leaves_the_rows_sqlite_does(postgres_url, synthetic_photos, tmp_path, monkeypatch):
    root = _library(synthetic_photos, tmp_path / "library")
    homes = {"sqlite": (tmp_path / "sqlite-home", {}),
             "postgresql": (tmp_path / "pg-home", {"TAGSCOPE_DATABASE_URL": postgres_url})}
    run_cli("db", "upgrade", home=homes["postgresql"][0], **homes["postgresql"][1])
    urls = {"sqlite": f"sqlite:///{homes['sqlite'][0].resolve()}/tagscope.sqlite", "postgresql": postgres_url}
    copied = _copied_tables(monkeypatch)

    def tag_both() -> dict[str, dict[str, list[tuple]]]:
        for home, env in homes.values():
            run_cli("tag", str(root), "--model", "synthetic", home=home, **env)
        return {name: _rows(url) for name, url in urls.items()}

    first = tag_both()
    assert {"images", "tags", "embeddings", "index_changes"} <= set(copied), copied
    # a file changed (tagged again: its tags and embedding replaced), one gone (missing), an
    # empty file filled with a copy of a photo (failed, then a duplicate), new files beside known ones
    photos = sorted((root / "photos").iterdir())
    photos[0].unlink()  # a hard link into the shared collection: never written through
    shutil.copy(photos[1], photos[0])
    photos[2].unlink()
    shutil.copy(photos[3], root / "odd" / "empty_00.jpg")
    for n in range(5):
        shutil.copy(photos[4 + n], root / "odd" / f"later_{n}.png")
    second = tag_both()
    for rows in (first, second):
        sqlite, postgresql = rows["sqlite"], rows["postgresql"]
        for table in sqlite:
            assert postgresql[table] == sqlite[table], table
    images = {row[1]: row for row in second["postgresql"]["images"]}
    assert len(images) == len(first["postgresql"]["images"]) + 5
    statuses = [row[6] for row in images.values()]
    assert {"tagged", "failed", "duplicate", "missing"} <= set(statuses)
    odd = os.path.join(str(root.resolve()), "odd")
    assert images[os.path.join(odd, "new\nline.png")][6] == "duplicate"
    latin1 = images[os.path.join(odd, "latin1-\\xe9t\\xe9.png")]  # shown with \xNN, the bytes kept
    assert latin1[2] == os.path.join(os.fsencode(odd), b"latin1-\xe9t\xe9.png")
    filled = images[os.path.join(odd, "empty_00.jpg")]  # failed, now a copy of a tagged photo
    assert (filled[6], filled[12]) == ("duplicate", images[str(photos[3].resolve())][0])
    assert images[os.path.join(odd, "empty_01.jpg")][6] == "failed"
    assert len(second["postgresql"]["tags"]) > 100


def test_copy_rows_insert_ids_and_update_rows_on_postgresql(postgres_url, tmp_path):
    run_cli("db", "upgrade", home=tmp_path / "home", TAGSCOPE_DATABASE_URL=postgres_url)
    db = get_database(postgres_url)
    table = Image.__table__
    names = ["plain", "tab\tnew\nline\\back", "quote ' \" {braces, comma}", "NULL", "\\N", ""]
    rows = [{"path": name, "path_raw": name.encode() + b"\x00\xff", "path_key": f"k{n}", "size_bytes": 2**40 + n,
             "mtime": 1.0 / 3 + n, "status": "pending", "stack_key": None} for n, name in enumerate(names)]
    with db.session() as s:
        assert can_copy(s)
        s.add(Image(path="first", path_raw=b"first", path_key="first", size_bytes=0, mtime=0.0))
        s.flush()
        ids = insert_ids(s, table, rows)
        assert ids == sorted(ids) and len(set(ids)) == len(rows) and min(ids) > 1
    with db.session() as s:
        got = s.execute(select(Image.id, Image.path, Image.path_raw, Image.size_bytes, Image.mtime, Image.status,
                               Image.stack_key, Image.created_at).where(one_of(Image.id, ids)).order_by(Image.id)).all()
        assert [tuple(r[:7]) for r in got] == [
            (i, r["path"], r["path_raw"], r["size_bytes"], r["mtime"], "pending", None) for i, r in zip(ids, rows)]
        assert all(r.created_at is not None for r in got)  # the column's Python default, as an INSERT's
        update_rows(s, table, [{"id": i, "status": "failed", "error": f"why\t{n}\n\\", "job_id": 7, "width": None}
                               for n, i in enumerate(ids)])
        update_rows(s, table, [{"id": ids[0], "status": "tagged", "error": None, "job_id": 8, "width": 3}])
    with db.session() as s:
        got = s.execute(select(Image.id, Image.status, Image.error, Image.job_id, Image.width)
                        .where(one_of(Image.id, ids)).order_by(Image.id)).all()
        assert [tuple(r) for r in got] == [(ids[0], "tagged", None, 8, 3)] + [
            (i, "failed", f"why\t{n}\n\\", 7, None) for n, i in enumerate(ids) if n]
        assert s.scalars(select(Image.id).where(one_of(Image.id, []))).all() == []
        assert s.scalars(select(Image.id).where(~one_of(Image.id, ids))).all() == [ids[0] - 1]
    with pytest.raises(sa_exc.IntegrityError), db.session() as s:  # a duplicate key fails as an INSERT's does
        copy_rows(s, table, [dict(rows[0], path_key="k1")])
    with db.session() as s:  # and left nothing behind
        assert s.scalar(select(Image.id).where(Image.path_key == "k1")) == ids[1]


@pytest.fixture
def db(db_at_head):
    database = Database(db_at_head)
    yield database
    database.dispose()


def test_one_of_binds_each_executions_values_and_keeps_the_index(db):
    with db.session() as s:
        ids = list(s.scalars(insert(Image).returning(Image.id), [
            {"path": f"p{n}", "path_raw": b"p", "path_key": f"k{n}", "size_bytes": 0, "mtime": 0.0} for n in range(8)]))

    def where(*conditions) -> list[int]:
        with db.session() as s:
            return list(s.scalars(select(Image.id).where(*conditions).order_by(Image.id)))

    # the same statement again and again (SQLAlchemy's compiled cache): each time its own values
    for chosen in (ids[:3], ids[3:5], [], ids[7:], list(reversed(ids))):
        assert where(one_of(Image.id, chosen)) == sorted(chosen)
        assert where(~one_of(Image.id, chosen), one_of(Image.id, ids[:4])) == [i for i in ids[:4] if i not in chosen]
    assert where(one_of(Image.path_key, ["k1", "k6", "nope"]), Image.status == "pending") == [ids[1], ids[6]]
    sql = str(select(Image.id).where(one_of(Image.path_key, ["k1"])).compile(db.engine))
    # a condition, not a value compared with true (which SQLite could not answer from the index)
    assert ("ANY (" if db.engine.dialect.name == "postgresql" else "IN (") in sql and "= 1" not in sql
