"""Registration: walk folders, record each library file in SQL, and decide which need tagging.

Photos, RAW files and videos are recognised by extension (as photo managers do,
:mod:`core.media.kinds`); a file with such an extension that does not decode is registered and
later recorded as failed with a reason. A file whose size or mtime changed is tagged again; one
that is gone is marked missing, unless its folder is found empty (offline: :mod:`tagger.missing`);
one that comes back unchanged gets its results back. Each file gets its stack key
(:mod:`core.media.stacks`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, insert, select, update

from core.db import Database
from core.files import FoundFile, display_path, walk_files
from core.media.kinds import MEDIA_EXTENSIONS
from core.media.stacks import stack_key
from core.pg_copy import can_copy, insert_ids, update_many
from core.schema import FAILED, MISSING, PENDING, TAGGED, Image, Tag, path_key
from core.sql_in import one_of
from indexer import store
from tagger import missing


@dataclass
class ScanResult:
    image_ids: list[int] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0  # files of no library kind (documents, sidecars...)
    missing: list[int] = field(default_factory=list)  # registered under a root, no longer there
    returned: int = 0  # missing files back unchanged, their results restored without the model
    offline: list[tuple[str, int]] = field(default_factory=list)  # empty folders left alone: (folder, images)


def scan(db: Database, roots: Sequence[str | os.PathLike], chunk: int = 1000, empty_ok: bool = False) -> ScanResult:
    """Register every photo, RAW and video file under ``roots``; one whose size or mtime changed
    is tagged again. ``empty_ok``: a folder found empty marks its registered files missing
    (otherwise it is taken for an unmounted drive: :mod:`tagger.missing`)."""
    result = ScanResult()
    batch: list[FoundFile] = []
    folders = missing.FoundFolders()  # where library files are: a folder without one may be an unmounted drive
    for found in walk_files(roots):
        if os.path.splitext(found.path)[1].lower() not in MEDIA_EXTENSIONS:
            result.skipped += 1
            continue
        folders.add(found.path)
        batch.append(found)
        if len(batch) >= chunk:
            _register(db, batch, result)
            batch = []
    if batch:
        _register(db, batch, result)
    result.missing, result.offline = missing.mark_missing(db, roots, result.image_ids, folders, empty_ok)
    return result


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
        returned: dict[int, dict] = {}
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
            if row.size_bytes != f.size or row.mtime != f.mtime:  # other bytes: every version's results go
                changed.append(row.id)
                reset.append({"id": row.id, "size_bytes": f.size, "mtime": f.mtime, **_PENDING})
                result.changed += 1
            elif row.status == MISSING:
                returned[row.id] = {"id": row.id, "size_bytes": f.size, "mtime": f.mtime, **_PENDING}
            else:
                result.unchanged += 1
        if new and can_copy(s):  # PostgreSQL: COPY with ids taken first (core.pg_copy)
            ids.update(zip((row["path_key"] for row in new), insert_ids(s, _IMAGES, new)))
        elif new:
            ids.update((key, image_id) for key, image_id in s.execute(
                insert(_IMAGES).returning(_IMAGES.c.path_key, _IMAGES.c.id), new))
        restored = set(missing.restore_returned(s, list(returned)))
        result.returned += len(restored)
        result.changed += len(returned) - len(restored)  # back, but with nothing to restore: tagged again
        reset += [row for image_id, row in returned.items() if image_id not in restored]
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
