"""Near-duplicate groups among the tagged photos, from the stored global embeddings.

Resized, re-encoded and cropped copies of a photo, and bursts shot a moment apart, have almost the
same embedding. This module finds them without reading a photo or running a model:

1. the stored global embeddings of the version (:func:`indexer.store.scan`; no re-embedding);
2. every pair with a cosine of at least the threshold among each photo's ``NEIGHBOURS`` nearest
   (:mod:`indexer.search.near_groups`, pure: arrays in, arrays out):
   a k-nearest search over an exact inner-product index, ``QUERY_CHUNK`` photos at a time (up to
   ``EXACT_MAX`` photos; above, in an HNSW graph, whose cosines are then exact). Not a range
   search: at a low threshold its results grow with the square of the photos (gigabytes before
   any limit), while this work is bounded by photos x ``NEIGHBOURS`` whatever the threshold
   (checked to be at least :data:`indexer.search.similar.MIN_THRESHOLD` too); photos with that
   many near-duplicates or more are counted in the report (``crowded``: they may have more);
3. groups by complete linkage inside each connected component of those pairs: a group starts at
   the photo with the most near-duplicates left and takes, closest first, those within the
   threshold of EVERY member so far. A chain (A~B, B~C, A far from C) never ends in one group,
   which is what keeps precision (``python -m bench.duplicates``);
4. files of one shot (a RAW and its JPEG, a Live Photo's still and video) are never grouped: they
   are one shot already (:mod:`core.media.stacks`).

Members come best first: the most pixels, then the most bytes (the likely original). Tagscope
never deletes or changes a photo: groups are for review.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select

from core.db import Database
from core.errors import TagscopeError
from core.media.metadata import Capture
from core.schema import TAGGED, Embedding, Image, Media, ModelVersion, collection_model_version
from core.sql_in import chunks
from indexer import store
from indexer.search.near_groups import EXACT_MAX, complete_groups, crowded, shot_pairs
from indexer.search.similar import CALIBRATED, check_threshold, threshold_for
from indexer.store import StoreVersion


@dataclass(frozen=True)
class Member:
    """One file of a group; ``similarity``: the cosine of its embedding with the group's first
    member's (1.0 for that one); ``original``: the first member, the most pixels, then bytes."""

    image_id: int
    path: str
    similarity: float
    width: int | None
    height: int | None
    size_bytes: int
    format: str | None
    mtime: float | None
    taken_at: str | None
    media: str | None
    original: bool = False

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    def to_json(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "path": self.path, "similarity": round(self.similarity, 4),
                "width": self.width, "height": self.height, "size_bytes": self.size_bytes, "format": self.format,
                "mtime": self.mtime, "taken_at": self.taken_at, "media": self.media, "original": self.original}


@dataclass(frozen=True)
class Group:
    """Near-duplicates: every two members' cosine is at least the threshold; ``similarity`` is the
    lowest of them. Named by its first member's id."""

    members: tuple[Member, ...]
    similarity: float

    @property
    def image_id(self) -> int:
        return self.members[0].image_id

    def to_json(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "size": len(self.members), "similarity": round(self.similarity, 4),
                "members": [m.to_json() for m in self.members]}


@dataclass(frozen=True)
class Report:
    """The groups of one model version at one threshold (``source``: where the threshold came from:
    ``given``, ``setting``, ``calibrated`` or ``default``), over ``photos`` compared photos;
    ``crowded``: photos with ``NEIGHBOURS`` near-duplicates or more (only their nearest were compared)."""

    spec: str
    version: str
    threshold: float
    source: str
    photos: int
    folder: str | None
    groups: list[Group] = field(default_factory=list)
    crowded: int = 0

    @property
    def duplicates(self) -> int:
        """Photos that are near-duplicates of a group's first."""
        return sum(len(g.members) - 1 for g in self.groups)

    def group_of(self, image_id: int) -> Group | None:
        return next((g for g in self.groups if any(m.image_id == image_id for m in g.members)), None)

    def to_json(self, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        page = self.groups[offset:None if limit is None else offset + limit]
        return {"model": {"spec": self.spec, "version": self.version}, "threshold": self.threshold,
                "threshold_source": self.source, "folder": self.folder, "photos": self.photos,
                "total_groups": len(self.groups), "total_duplicates": self.duplicates, "crowded": self.crowded,
                "offset": offset, "limit": limit, "more": limit is not None and offset + limit < len(self.groups),
                "groups": [g.to_json() for g in page]}


# -- the collection --------------------------------------------------------------------------
def served_version(db: Database, spec: str | None = None, version: str | None = None) -> tuple[StoreVersion, str]:
    """The model version whose photos are compared, and its spec: ``version`` (a version id: the
    one a server's searcher serves), else with ``spec`` (a model set in the settings) the newest
    version of that spec with stored embeddings, else the collection's current one. Raises
    :class:`TagscopeError` when nothing is tagged."""
    with db.session() as s:
        row = None
        if version:
            row = s.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
        if row is None and spec:
            row = s.scalars(select(ModelVersion).where(ModelVersion.spec == spec, select(Embedding.image_id).where(
                Embedding.model_version_id == ModelVersion.id).exists()).order_by(ModelVersion.id.desc())).first()
        row = row or collection_model_version(s)
        if row is None:
            raise TagscopeError("nothing is tagged yet: run `tagscope tag FOLDER` first")
        return StoreVersion.of(row), row.spec


def store_state(db: Database, version: StoreVersion) -> tuple:
    """What changes when the groups may change: the version's stored embeddings of tagged photos
    (count, highest id), the newest change to a tagged photo's row and the changes the index has
    not applied yet. Cheap: caches key on it."""
    with db.session() as s:
        count, top, newest = s.execute(
            select(func.count(), func.max(Embedding.image_id), func.max(Image.updated_at))
            .join(Image, Image.id == Embedding.image_id)
            .where(Embedding.model_version_id == version.id, Image.status == TAGGED)).one()
    return version.version, int(count or 0), top, str(newest), store.pending_changes(db, version.id)


def find_duplicates(db: Database, threshold: float | str | None = None, *, setting: float | None = None,
                    spec: str | None = None, version: str | None = None, folder: str | None = None,
                    exact_max: int = EXACT_MAX) -> Report:
    """The near-duplicate groups of the served version's tagged photos (under ``folder`` when
    given), largest groups first. ``threshold`` (given) beats ``setting`` (``duplicate_threshold``),
    which beats the model's own (:func:`indexer.search.similar.threshold_for`)."""
    given = check_threshold(threshold)  # before any work
    chosen = check_threshold(setting, "duplicate_threshold setting") if given is None else given
    version, model_spec = served_version(db, spec, version)
    source = "given" if given is not None else "setting" if chosen is not None else \
        "calibrated" if model_spec in CALIBRATED else "default"
    value = threshold_for(model_spec, chosen)
    folder_filter = _folder_filter(folder)
    ids, vectors = _load(db, version, folder_filter)
    where = folder_filter.folder if folder_filter is not None else None
    if len(ids) < 2:
        return Report(model_spec, version.version, value, source, len(ids), where)
    i, j, s = shot_pairs(vectors, value, exact_max, _stack_keys(db, ids))
    return Report(model_spec, version.version, value, source, len(ids), where,
                  _describe(db, ids, vectors, complete_groups(len(ids), i, j, s)), crowded(len(ids), i, j))


def _folder_filter(folder: str | None):
    if folder is None or not folder.strip():
        return None
    from indexer.search.filters import Filters

    return Filters.parse(folder)


def _load(db: Database, version: StoreVersion, folder_filter) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the version's tagged photos (under the folder), by id."""
    allowed = None
    if folder_filter is not None:
        with db.session() as s:
            allowed = np.asarray(sorted(s.scalars(folder_filter.where(
                select(Image.id).join(Embedding, Embedding.image_id == Image.id)
                .where(Embedding.model_version_id == version.id), version.id))), np.int64)
    ids, vectors = [], []
    for chunk_ids, chunk_vectors, _ in store.scan(db, version.id, version.dim):
        if allowed is not None:
            keep = np.isin(chunk_ids, allowed)
            chunk_ids, chunk_vectors = chunk_ids[keep], chunk_vectors[keep]
        ids.append(chunk_ids)
        vectors.append(chunk_vectors)
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, version.dim), np.float32)
    vectors = np.concatenate(vectors)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # float16 storage: renormalise
    return np.concatenate(ids), vectors / np.maximum(norms, 1e-12)


def _stack_keys(db: Database, ids: np.ndarray) -> np.ndarray:
    """Per id, a number shared by the files of one shot, or -1."""
    keys: dict[int, str] = {}
    with db.session() as s:
        for chunk in chunks(ids.tolist()):
            keys.update(s.execute(select(Image.id, Image.stack_key)
                                  .where(Image.id.in_(chunk), Image.stack_key.is_not(None))).all())
    numbers = {key: n for n, key in enumerate(sorted(set(keys.values())))}
    return np.asarray([numbers[keys[i]] if i in keys else -1 for i in ids.tolist()], np.int64)


def _describe(db: Database, ids: np.ndarray, vectors: np.ndarray, groups: list[list[int]]) -> list[Group]:
    """Groups of rows as :class:`Group` s: members best first (pixels, then bytes), similarities to
    the first; the largest groups first, then the closest."""
    wanted = sorted({int(ids[r]) for g in groups for r in g})
    rows: dict[int, Any] = {}
    media: dict[int, Any] = {}
    with db.session() as s:
        for chunk in chunks(wanted):
            rows.update((r.id, r) for r in s.execute(
                select(Image.id, Image.path, Image.width, Image.height, Image.size_bytes, Image.format, Image.mtime)
                .where(Image.id.in_(chunk))))
            media.update((r.image_id, r) for r in s.execute(
                select(Media.image_id, Media.kind, Media.taken, Media.taken_offset_min)
                .where(Media.image_id.in_(chunk))))
    out = []
    for group in groups:
        present = [r for r in group if int(ids[r]) in rows]
        if len(present) < 2:
            continue
        order = sorted(present, key=lambda r: (-(rows[int(ids[r])].width or 0) * (rows[int(ids[r])].height or 0),
                                               -(rows[int(ids[r])].size_bytes or 0), int(ids[r])))
        block = vectors[order]
        gram = block @ block.T
        members = []
        for k, r in enumerate(order):
            row, shot = rows[int(ids[r])], media.get(int(ids[r]))
            taken = Capture(taken=shot.taken, offset_min=shot.taken_offset_min).taken_iso() if shot else None
            members.append(Member(row.id, row.path, 1.0 if k == 0 else float(gram[0, k]), row.width, row.height,
                                  int(row.size_bytes or 0), row.format, row.mtime, taken,
                                  shot.kind if shot else None, original=k == 0))
        out.append(Group(tuple(members), float(gram[np.triu_indices(len(order), 1)].min())))
    out.sort(key=lambda g: (-len(g.members), -g.similarity, g.image_id))
    return out
