"""The embedding store: every tagged image's embedding, per model version, in SQL.

Embeddings are data, the FAISS index a cache built from them (:mod:`indexer.sync`). They live
in the ``embeddings`` table as float16 bytes (1 KiB per 512-d vector; for models with a local
stream also the patch features, [P, D] float16), written in the same transaction as the image's
status and tags, so a kill at any moment leaves SQL, tags and embeddings consistent, and any
machine that reaches the database can rebuild the index: no shared folder, no orphans. Why a
column and not shard files: docs/benchmarks.md ("Embedding store").

Every change that the index must follow (stored, replaced, dropped) also appends an entry to
the version's index change log (:mod:`indexer.log`); every copy of the index applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from core.db import Database
from core.pg_copy import can_copy, copy_rows
from core.schema import TAGGED, Embedding, Image, ModelVersion
from core.sql_in import chunks, one_of
from indexer import log as index_log

DTYPE = np.float16


@dataclass(frozen=True)
class StoreVersion:
    """A model version as the store and its index key it: the SQL id rows carry, the version id
    that names its index files, and the embedding size. Looked up once and handed down."""

    id: int
    version: str
    dim: int

    @classmethod
    def of(cls, row: ModelVersion) -> StoreVersion:
        return cls(row.id, row.version, row.embed_dim)


def find_version(db: Database, version: str) -> StoreVersion | None:
    """The store's key of a model version id, or None when nothing was tagged with it."""
    with db.session() as s:
        row = s.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
        return StoreVersion.of(row) if row is not None else None


def all_versions(db: Database) -> list[StoreVersion]:
    """Every model version the collection knows, oldest first."""
    with db.session() as s:
        return [StoreVersion.of(row) for row in s.scalars(select(ModelVersion).order_by(ModelVersion.id))]


def pending_changes(db: Database, model_version_id: int, position: int = 0) -> int:
    """Entries of the version's index change log after ``position`` (a copy's place in it)."""
    return index_log.behind(db, model_version_id, position)


def count_all(db: Database, model_version_id: int) -> int:
    """Stored embeddings of this version, whatever their image's state."""
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Embedding)
                            .where(Embedding.model_version_id == model_version_id)) or 0)


def to_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=DTYPE).tobytes()


def from_bytes(rows: Iterable[bytes], dim: int) -> np.ndarray:
    """float32 ``[N, dim]`` from stored float16 rows (one row per vector)."""
    return np.frombuffer(b"".join(rows), dtype=DTYPE).astype(np.float32).reshape(-1, dim)


def mark_changed(s: Session, model_version_id: int, image_ids: Iterable[int]) -> None:
    """Append the images to the version's index change log (:mod:`indexer.log`)."""
    index_log.append(s, [{"model_version_id": model_version_id, "image_id": int(i)} for i in image_ids])


def drop(s: Session, image_ids: Sequence[int]) -> None:
    """Drop the embeddings of ``image_ids`` under every model version (failed, duplicate, changed
    files), telling each version's index."""
    for chunk in chunks(image_ids):
        held = s.execute(select(Embedding.model_version_id, Embedding.image_id)
                         .where(one_of(Embedding.image_id, chunk))).all()
        if held:
            s.execute(delete(Embedding).where(one_of(Embedding.image_id, chunk)))
            index_log.append(s, [{"model_version_id": mv, "image_id": i} for mv, i in held])


def mark_images_changed(s: Session, image_ids: Sequence[int]) -> None:
    """Tell the index of every version holding these images to look at them again (e.g. missing)."""
    for chunk in chunks(image_ids):
        held = s.execute(select(Embedding.model_version_id, Embedding.image_id)
                         .where(one_of(Embedding.image_id, chunk))).all()
        if held:
            index_log.append(s, [{"model_version_id": mv, "image_id": i} for mv, i in held])


def put(s: Session, model_version_id: int, image_ids: Sequence[int], vectors: np.ndarray,
        patches: np.ndarray | None = None) -> None:
    """Store (replace) the embeddings of ``image_ids`` for one model version. Other versions'
    embeddings of the same images stay: an upgrade builds the new version beside the active one
    (:mod:`tagger.versions`); :func:`drop` removes them all when an image's content changes."""
    for chunk in chunks(image_ids):
        s.execute(delete(Embedding).where(Embedding.model_version_id == model_version_id,
                                          one_of(Embedding.image_id, chunk)))
    rows = [{"image_id": int(i), "model_version_id": model_version_id, "vector": to_bytes(vectors[n]),
             "patches": None if patches is None else to_bytes(patches[n])} for n, i in enumerate(image_ids)]
    if rows and can_copy(s):  # PostgreSQL: no statement with thousands of parameters to convert
        copy_rows(s, Embedding.__table__, rows)
    elif rows:
        s.execute(insert(Embedding), rows)
    if rows:
        mark_changed(s, model_version_id, image_ids)


def get(db: Database, model_version_id: int, image_ids: Sequence[int], dim: int,
        tagged_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 vectors) of those ``image_ids`` that have a stored embedding (of an image still
    tagged, unless ``tagged_only`` is False), in ascending id order."""
    ids, vectors, _ = get_with_patches(db, model_version_id, image_ids, dim, tagged_only, patches=False)
    return ids, vectors


def get_with_patches(db: Database, model_version_id: int, image_ids: Sequence[int], dim: int,
                     tagged_only: bool = True, patches: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`get`, plus the patch features ``[N, P, dim]`` when asked for and every image has them."""
    found_ids: list[int] = []
    found: list[bytes] = []
    found_patches: list[bytes | None] = []
    columns = [Embedding.image_id, Embedding.vector] + ([Embedding.patches] if patches else [])
    with db.session() as s:
        for chunk in chunks(sorted(set(map(int, image_ids)))):
            query = select(*columns).where(Embedding.model_version_id == model_version_id,
                                           Embedding.image_id.in_(chunk))
            if tagged_only:
                query = query.join(Image, Image.id == Embedding.image_id).where(Image.status == TAGGED)
            for row in s.execute(query.order_by(Embedding.image_id)):
                found_ids.append(row[0])
                found.append(row[1])
                found_patches.append(row[2] if patches else None)
    vectors = from_bytes(found, dim)
    local = None
    if patches and found_patches and all(p is not None for p in found_patches):
        local = from_bytes(found_patches, dim).reshape(len(found_patches), -1, dim)
    return np.asarray(found_ids, dtype=np.int64), vectors, local


def scan(db: Database, model_version_id: int, dim: int, chunk: int = 20_000, with_patches: bool = False
         ) -> Iterator[tuple[np.ndarray, np.ndarray, list[bytes | None]]]:
    """Every stored embedding of a version whose image is tagged, in id order, ``chunk`` at a time:
    (ids, float32 vectors, raw patch bytes or Nones). Keyset pagination: constant cost per chunk."""
    last = -1
    while True:
        columns = [Embedding.image_id, Embedding.vector] + ([Embedding.patches] if with_patches else [])
        with db.session() as s:
            rows = s.execute(select(*columns).join(Image, Image.id == Embedding.image_id)
                             .where(Embedding.model_version_id == model_version_id, Image.status == TAGGED,
                                    Embedding.image_id > last)
                             .order_by(Embedding.image_id).limit(chunk)).all()
        if not rows:
            return
        last = rows[-1][0]
        yield (np.asarray([r[0] for r in rows], dtype=np.int64), from_bytes([r[1] for r in rows], dim),
               [r[2] if with_patches else None for r in rows])


def count(db: Database, model_version_id: int) -> int:
    """How many tagged images have a stored embedding of this version."""
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Embedding).join(Image, Image.id == Embedding.image_id)
                            .where(Embedding.model_version_id == model_version_id, Image.status == TAGGED)) or 0)


SAMPLE_SORT_MAX = 200_000  # up to this many stored rows a sample sorts them all by random()


def sample(db: Database, model_version_id: int, dim: int, n: int, seed: int | None = None,
           sort_max: int = SAMPLE_SORT_MAX) -> np.ndarray:
    """A uniform random sample of ``n`` stored vectors (float32) of tagged images, or all of them
    when fewer, in random order: what ANN indexes train on (see :func:`sample_ids`)."""
    ids = sample_ids(db, model_version_id, n, seed, sort_max)
    found, vectors = get(db, model_version_id, ids.tolist(), dim)
    order = {int(i): k for k, i in enumerate(ids)}
    return vectors[np.argsort([order[int(i)] for i in found], kind="stable")] if len(found) else vectors


def sample_ids(db: Database, model_version_id: int, n: int, seed: int | None = None,
               sort_max: int = SAMPLE_SORT_MAX) -> np.ndarray:
    """The ids of a uniform random sample of ``n`` tagged images with a stored embedding, or of all
    of them when fewer, in random order. Up to ``sort_max`` rows, ``ORDER BY random()``; above,
    random image ids drawn between the smallest and largest stored id and checked by primary
    key, so a sample of 5x10^5 from 10^8 rows reads about 5x10^5 rows, not 10^8."""
    if n <= 0:
        return np.zeros(0, np.int64)
    where = (Embedding.model_version_id == model_version_id, Image.status == TAGGED)
    with db.session() as s:
        lo, hi, total = s.execute(select(func.min(Embedding.image_id), func.max(Embedding.image_id), func.count())
                                  .join(Image, Image.id == Embedding.image_id).where(*where)).one()
        if not total:
            return np.zeros(0, np.int64)
        if total <= sort_max or n >= total // 2:
            rows = s.scalars(select(Embedding.image_id).join(Image, Image.id == Embedding.image_id)
                             .where(*where).order_by(func.random()).limit(n)).all()
            return np.asarray(rows, np.int64)
    rng = np.random.default_rng(seed)
    density = total / (hi - lo + 1)
    picked: set[int] = set()
    parts: list[np.ndarray] = []
    while (have := sum(map(len, parts))) < n:
        size = min(int(1.2 * (n - have) / density) + 16, 20 * n)  # ids are seldom that sparse
        draw = np.setdiff1d(rng.integers(lo, hi + 1, size=size), np.fromiter(picked, np.int64, len(picked)))
        picked.update(draw.tolist())
        found = existing(db, model_version_id, draw.tolist())
        parts.append(found[rng.permutation(len(found))])
    return np.concatenate(parts)[:n]


def existing(db: Database, model_version_id: int, image_ids: Sequence[int]) -> np.ndarray:
    """Those of ``image_ids`` that are tagged and have a stored embedding, ascending."""
    found: list[int] = []
    with db.session() as s:
        for chunk in chunks(sorted(set(map(int, image_ids)))):
            found += s.scalars(select(Embedding.image_id).join(Image, Image.id == Embedding.image_id)
                               .where(Embedding.model_version_id == model_version_id, Image.status == TAGGED,
                                      Embedding.image_id.in_(chunk)).order_by(Embedding.image_id)).all()
    return np.asarray(found, np.int64)
