"""Storing one tagged batch: image states, tags, embeddings and what each file says about its
shot (:mod:`tagger.media_store`) in one transaction, in bulk.

A batch costs a fixed number of statements whatever its size: one executemany UPDATE for the
decoded images (tagged or duplicate), one for the failed ones, one DELETE and one multi-row
INSERT for the tags, and the embedding store's bulk writes. On PostgreSQL each UPDATE is one
statement over arrays and the tags go by COPY (:mod:`core.pg_copy`): psycopg's handling of
large statements' parameters, not the database, was most of the cost there. Per-row statements
cost ~0.7 ms an image and would cap a GPU pipeline near 1,400 img/s (issue 10); batched, storing
is tens of microseconds an image on SQLite and PostgreSQL, mostly the database's own work
(docs/benchmarks.md, "Bookkeeping per image").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from core.db import Database
from core.pg_copy import can_copy, copy_rows, update_many
from core.schema import DUPLICATE, FAILED, TAGGED, Image, Tag, utcnow
from core.sql_in import one_of
from indexer import store
from tagger.media_store import drop_frames, put_frames, put_media
from tagger.text_store import Texts, drop_readings, put_readings


@dataclass
class Encoded:
    """A batch's decoded images, embedded and scored: ids, global embeddings [B, D] and (models
    with a local stream) patch features [B, P, D], both as stored (float16 values), and the best
    labels per image."""

    ids: list[int] = field(default_factory=list)
    vectors: np.ndarray | None = None
    patches: np.ndarray | None = None
    best: list[list[tuple[int, float]]] = field(default_factory=list)
    frames: dict[int, tuple[list[float], np.ndarray]] = field(default_factory=dict)  # videos: times, [F, D]


_IMAGES = Image.__table__
_DECODED = ("content_hash", "width", "height", "format", "error", "model_version_id", "tagged_at", "job_id",
            "status", "duplicate_of")
_FAILED = ("status", "error", "model_version_id", "tagged_at", "job_id")


def _bulk_update(fields: tuple[str, ...]):
    """``UPDATE images SET f = :b_f, ... WHERE id = :b_id``, run once with every row's values."""
    return (update(_IMAGES).where(_IMAGES.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in fields}))


_UPDATE_DECODED = _bulk_update(_DECODED)
_UPDATE_FAILED = _bulk_update(_FAILED)


def _params(image_id: int, **values: Any) -> dict[str, Any]:
    return {"id": image_id, **values}


def store_batch(db: Database, batch: dict[str, Any], enc: Encoded, mv_id: int, job_id: int,
                texts: Texts | None = None) -> tuple[int, int]:
    """One transaction per batch: statuses (with the job that stored them: its progress), replaced
    tags and embeddings (with the index's change rows), and with OCR on what it read
    (:mod:`tagger.text_store`), so a kill at any moment leaves them consistent. Returns (decoded,
    failed)."""
    now = utcnow()
    keep: list[int] = []  # positions in the batch of images that are tagged (not duplicates)
    with db.session() as s:
        canonical = originals(s, [it["hash"] for it in batch["ok"]], enc.ids, mv_id)
        decoded, tag_rows = [], []
        for n, it in enumerate(batch["ok"]):
            original = canonical.get(it["hash"])
            duplicate = original is not None and original != it["id"]
            if not duplicate:
                canonical[it["hash"]] = it["id"]
                keep.append(n)
                if enc.best:
                    tag_rows.extend({"image_id": it["id"], "label_id": lid, "model_version_id": mv_id,
                                     "score": float(sc)} for lid, sc in enc.best[n])
            decoded.append(_params(it["id"], content_hash=it["hash"], width=it["width"], height=it["height"],
                                   format=it["format"], error=None, model_version_id=mv_id, tagged_at=now,
                                   job_id=job_id, status=DUPLICATE if duplicate else TAGGED,
                                   duplicate_of=original if duplicate else None))
        update_many(s, _IMAGES, _UPDATE_DECODED, decoded)
        update_many(s, _IMAGES, _UPDATE_FAILED, [_params(it["id"], status=FAILED, error=it["error"][:1000],
                                                           model_version_id=mv_id, tagged_at=now, job_id=job_id)
                                                   for it in batch["failed"]])
        if enc.ids:
            # Re-tagging replaces this version's tags; other versions' stay until they are removed
            # (`tagscope models remove`): the active version serves while a new one is built.
            s.execute(delete(Tag).where(one_of(Tag.image_id, enc.ids), Tag.model_version_id == mv_id))
        if tag_rows and can_copy(s):
            copy_rows(s, Tag.__table__, tag_rows)
        elif tag_rows:
            s.execute(insert(Tag), tag_rows)
        # Failed images and duplicates keep no embedding (and leave every index); tagged ones keep this one.
        kept_ids = [enc.ids[n] for n in keep]
        dropped = [it["id"] for it in batch["failed"]] + sorted(set(enc.ids) - set(kept_ids))
        store.drop(s, dropped)
        drop_frames(s, dropped)
        if texts is not None:  # with OCR on: a file that no longer decodes keeps no stale text either
            drop_readings(s, [it["id"] for it in batch["failed"]])
            put_readings(s, texts, {it["id"]: it["hash"] for it in batch["ok"]})
        if keep:
            store.put(s, mv_id, kept_ids, enc.vectors[keep], None if enc.patches is None else enc.patches[keep])
            put_frames(s, mv_id, {i: enc.frames[i] for i in kept_ids if i in enc.frames})
        put_media(s, batch["ok"])
    return len(batch["ok"]), len(batch["failed"])


def originals(s: Session, hashes: list[str], ids: list[int], mv_id: int) -> dict[str, int]:
    """content hash -> the id of an image already tagged with those bytes (this batch's aside)."""
    if not hashes:
        return {}
    return dict(s.execute(select(Image.content_hash, func.min(Image.id))
                          .where(one_of(Image.content_hash, hashes), Image.status == TAGGED,
                                 Image.model_version_id == mv_id, ~one_of(Image.id, ids))
                          .group_by(Image.content_hash)).all())
