"""A batch is stored with a fixed number of bulk statements on SQLite and PostgreSQL, and the
writer thread stores batches in order and hands its errors to the tagging thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sqlalchemy import event, func, select

from core.schema import DUPLICATE, FAILED, TAGGED, Embedding, Image, ModelVersion, Tag
from migrations import get_database
from tagger.batch_store import Encoded, store_batch
from tagger.writer import BatchWriter

from .commands import run_cli
from .photos import photos_subset


def _statements(db):
    seen: list[tuple[str, bool]] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append((" ".join(statement.split())[:40].upper(), executemany))

    event.listen(db.engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", count)


def test_a_batch_is_stored_with_one_bulk_update_per_kind_of_row(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 40)), home=home, **env)
    db = get_database(url)
    with db.session() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
        mv = s.scalars(select(ModelVersion)).one()
        label_ids = list(s.scalars(select(Tag.label_id).distinct().limit(3)))
    ok_ids, failed_ids = ids[:30], ids[30:]
    # ids[1] and ids[2] carry ids[0]'s bytes: duplicates of it within the batch
    ok = [{"id": i, "hash": ("h0" if n < 3 else f"h{n}"), "width": 10 + n, "height": 20, "format": "PNG"}
          for n, i in enumerate(ok_ids)]
    failed = [{"id": i, "error": "truncated image data"} for i in failed_ids]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, mv.embed_dim)).astype(np.float32)
    best = [[(label_ids[0], 0.5), (label_ids[1], 0.25)] for _ in ok_ids]
    seen, stop = _statements(db)
    try:
        assert store_batch(db, {"ok": ok, "failed": failed}, Encoded(ok_ids, vectors, None, best), mv.id, 7) == (30, 10)
    finally:
        stop()
    updates = [(sql, many) for sql, many in seen if sql.startswith("UPDATE IMAGES")]
    # decoded rows, failed rows: executemany, or on PostgreSQL one statement over arrays each
    many = not url.startswith("postgresql")
    assert updates == [(updates[0][0], many), (updates[1][0], many)], seen
    # a fixed number of statements, whatever the batch size (PostgreSQL: + the change log's advisory lock)
    assert len(seen) <= 12 + url.startswith("postgresql"), seen
    with db.session() as s:
        rows = {r.id: r for r in s.scalars(select(Image).where(Image.id.in_(ids)))}
        tags = s.scalar(select(func.count()).select_from(Tag).where(Tag.image_id.in_(ok_ids)))
        embedded = set(s.scalars(select(Embedding.image_id).where(Embedding.image_id.in_(ids))))
    assert [rows[i].status for i in ok_ids[:3]] == [TAGGED, DUPLICATE, DUPLICATE]
    assert rows[ok_ids[1]].duplicate_of == ok_ids[0] and rows[ok_ids[5]].width == 15
    assert all(rows[i].status == TAGGED and rows[i].job_id == 7 for i in ok_ids[3:])
    assert all(rows[i].status == FAILED and rows[i].error == "truncated image data" for i in failed_ids)
    assert tags == 2 * 28  # only the images that are not duplicates keep tags
    assert embedded == set(ok_ids) - {ok_ids[1], ok_ids[2]}


def test_the_writer_stores_in_order_and_raises_its_error_in_the_callers_thread():
    stored: list[int] = []
    threads: set[str] = set()

    def store(item: int) -> None:
        threads.add(threading.current_thread().name)
        if item == 3:
            raise RuntimeError("disk full")
        stored.append(item)

    writer = BatchWriter(store, depth=1)
    with pytest.raises(RuntimeError, match="disk full"):
        for item in range(10):
            writer.put(item)
        writer.close()
    assert stored == [0, 1, 2] and threads == {"tagscope-writer"}
    with BatchWriter(stored.append) as ok_writer:
        for item in range(100, 105):
            ok_writer.put(item)
    assert stored[3:] == [100, 101, 102, 103, 104]
