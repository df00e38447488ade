"""Registration: walk folders, record each library file in SQL, and decide which need tagging.

Photos, RAW files and videos are recognised by extension (as photo managers do,
:mod:`core.media.kinds`); a file with such an extension that does not decode is registered and
later recorded as failed with a reason. A file whose size or mtime changed is tagged again; one
that is gone is marked missing. Each file gets its stack key (:mod:`core.media.stacks`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, insert, select, update

from core.db import FAILED, MISSING, PENDING, TAGGED, Database, Image, Tag, path_key
from core.files import FoundFile, display_path, walk_files
from core.media.kinds import MEDIA_EXTENSIONS
from core.media.stacks import stack_key
from core.pg_copy import can_copy, insert_ids, update_many
from core.sql_in import one_of
from indexer import store


@dataclass
class ScanResult:
    image_ids: list[int] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0  # files of no library kind (documents, sidecars...)
    missing: list[int] = field(default_factory=list)  # registered under a root, no longer there


def scan(db: Database, roots: Iterable[str | os.PathLike], chunk: int = 1000) -> ScanResult:
    """Register every photo, RAW and video file under ``roots``; one whose size or mtime changed
    is tagged again."""
    result = ScanResult()
    batch: list[FoundFile] = []
    for found in walk_files(roots):
        if os.path.splitext(found.path)[1].lower() not in MEDIA_EXTENSIONS:
            result.skipped += 1
            continue
        batch.append(found)
        if len(batch) >= chunk:
            _register(db, batch, result)
            batch = []
    if batch:
        _register(db, batch, result)
    _mark_missing(db, roots, result)
    return result


def _mark_missing(db: Database, roots: Iterable[str | os.PathLike], result: ScanResult, chunk: int = 5000) -> None:
    """Images registered under a scanned folder that the walk no longer found become MISSING."""
    found = set(result.image_ids)
    for root in roots:
        if not os.path.isdir(root):
            continue
        prefix = display_path(os.path.join(os.path.abspath(os.fsdecode(root)), ""))
        with db.session() as s:
            ids = s.scalars(select(Image.id).where(Image.path.startswith(prefix, autoescape=True),
                                                   Image.status != MISSING)).all()
            gone = [i for i in ids if i not in found]
            for start in range(0, len(gone), chunk):
                s.execute(update(Image).where(one_of(Image.id, gone[start:start + chunk]))
                          .values(status=MISSING, error="file no longer found"))
            # Out of the search index (rows, tags and embeddings stay, should the files come back).
            store.mark_images_changed(s, gone)
        result.missing.extend(gone)


_IMAGES = Image.__table__
_PENDING = {"status": PENDING, "content_hash": None, "error": None, "duplicate_of": None}  # to be tagged again
_RESET = (update(_IMAGES).where(_IMAGES.c.id == bindparam("b_id"))
          .values({name: bindparam(f"b_{name}") for name in ("size_bytes", "mtime", *_PENDING)}))
_SET_STACK = update(_IMAGES).where(_IMAGES.c.id == bindparam("b_id")).values(stack_key=bindparam("b_stack_key"))


def _register(db: Database, files: Sequence[FoundFile], result: ScanResult) -> None:
    """One chunk of found files, in bulk: one SELECT, one multi-row INSERT (new files), one
    executemany UPDATE (changed or returning files); on PostgreSQL COPY and one UPDATE over arrays
    (:mod:`core.pg_copy`)."""
    raws = [os.fsencode(f.path) for f in files]
    keys = [path_key(raw) for raw in raws]
    changed: list[int] = []
    with db.session() as s:
        known = {row.path_key: row for row in s.execute(
            select(Image.id, Image.path_key, Image.size_bytes, Image.mtime, Image.status, Image.stack_key)
            .where(one_of(Image.path_key, keys)))}
        new, reset, stacked, ids = [], [], [], {}
        for f, raw, key in zip(files, raws, keys):
            row = known.get(key)
            if row is None:
                if key not in ids:
                    ids[key] = None
                    new.append({"path": display_path(f.path), "path_raw": raw, "path_key": key,
                                "size_bytes": f.size, "mtime": f.mtime, "status": PENDING,
                                "stack_key": stack_key(raw)})
                    result.new += 1
                continue
            ids[key] = row.id
            if row.stack_key is None:  # registered before stacks existed
                stacked.append({"id": row.id, "stack_key": stack_key(raw)})
            if row.size_bytes != f.size or row.mtime != f.mtime or row.status == MISSING:
                if row.size_bytes != f.size or row.mtime != f.mtime:  # other bytes: every version's results go
                    changed.append(row.id)
                reset.append({"id": row.id, "size_bytes": f.size, "mtime": f.mtime, **_PENDING})
                result.changed += 1
            else:
                result.unchanged += 1
        if new and can_copy(s):  # PostgreSQL: COPY with ids taken first (core.pg_copy)
            ids.update(zip((row["path_key"] for row in new), insert_ids(s, _IMAGES, new)))
        elif new:
            ids.update((key, image_id) for key, image_id in s.execute(
                insert(_IMAGES).returning(_IMAGES.c.path_key, _IMAGES.c.id), new))
        update_many(s, _IMAGES, _RESET, reset)
        update_many(s, _IMAGES, _SET_STACK, stacked)
        store.drop(s, changed)
        if changed:
            s.execute(delete(Tag).where(one_of(Tag.image_id, changed)))
        result.image_ids.extend(ids[key] for key in keys)


def images_to_tag(db: Database, image_ids: Sequence[int], model_version_id: int,
                  retry_failed: bool = False, retag: bool = False, chunk: int = 5000) -> list[int]:
    """The ids among ``image_ids`` that need work for this model version (resume = skip the rest)."""
    todo: list[int] = []
    for start in range(0, len(image_ids), chunk):
        ids = list(image_ids[start:start + chunk])
        with db.session() as s:
            rows = s.execute(select(Image.id, Image.status, Image.model_version_id)
                             .where(one_of(Image.id, ids))).all()
        for image_id, status, mv in rows:
            if status == PENDING or (status == TAGGED and (retag or mv != model_version_id)) or \
                    (status == FAILED and retry_failed):
                todo.append(image_id)
    return sorted(todo)
