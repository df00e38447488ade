"""Files that went away, and files that came back: the two ends of MISSING.

A nightly run over a NAS share or a USB drive meets, sooner or later, a folder that is there but
empty: the share was not mounted (the mount point stays), the drive not plugged in. Taking that
for "every photo was deleted" would mark the whole library missing (out of search) and, once the
drive is back, tag every file again. So:

- a scanned folder in which the walk found no library file at all, while photos are registered
  under it, is taken for OFFLINE: its photos are left as they were, and the run says so in one
  line naming the fix (``--empty-ok`` when the folder really was emptied);
- a missing file that comes back with the same size and mtime gets its results back: an image
  tagged before (it still holds its embedding for the version that tagged it) is tagged again at
  once, without the model, and returns to the search index; a duplicate whose original is still
  there is a duplicate again. Anything else is tagged again as before.
Tags, embeddings and media facts of a missing image are never deleted (:func:`mark_missing`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from core.db import DUPLICATE, MISSING, TAGGED, Database, Embedding, Image
from core.files import display_path
from core.sql_in import one_of
from indexer import store

log = logging.getLogger(__name__)

CHUNK = 5000


def folder_prefix(root: str | os.PathLike) -> str:
    """How the paths of the files under the folder ``root`` begin (stored form, trailing slash)."""
    return display_path(os.path.join(os.path.abspath(os.fsdecode(root)), ""))


def offline_message(root: str, registered: int) -> str:
    return (f"{root} holds no photos now but {registered} registered ones are under it: left as they were "
            "(an unmounted drive or share?); if they were deleted, run `tagscope tag` on it with --empty-ok")


def mark_missing(db: Database, roots: Iterable[str | os.PathLike], found_ids: Iterable[int],
                 empty: set[str], empty_ok: bool = False) -> tuple[list[int], list[tuple[str, int]]]:
    """Images registered under a scanned folder that the walk no longer found become MISSING
    (out of the search index; rows, tags and embeddings stay, should the files come back).
    A folder the walk found empty (its :func:`folder_prefix` in ``empty``) keeps its images
    unless ``empty_ok`` (module docstring).
    Returns (the ids marked missing, [(folder, registered images left alone)])."""
    found = set(found_ids)
    missing: list[int] = []
    offline: list[tuple[str, int]] = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        prefix = folder_prefix(root)
        with db.session() as s:
            ids = s.scalars(select(Image.id).where(Image.path.startswith(prefix, autoescape=True),
                                                   Image.status != MISSING)).all()
            gone = [i for i in ids if i not in found]
            if gone and prefix in empty and not empty_ok:
                offline.append((os.fsdecode(root), len(gone)))
                log.warning("%s", offline_message(os.fsdecode(root), len(gone)))
                continue
            for start in range(0, len(gone), CHUNK):
                s.execute(update(Image).where(one_of(Image.id, gone[start:start + CHUNK]))
                          .values(status=MISSING, error="file no longer found"))
            store.mark_images_changed(s, gone)
        missing.extend(gone)
    return missing, offline


def restore_returned(s: Session, image_ids: Sequence[int]) -> list[int]:
    """Missing images whose file is back unchanged: the tagged ones (an embedding of the version
    that tagged them is stored) become TAGGED again and go back into the index; duplicates of an
    original still present become DUPLICATE again. Returns the ids restored."""
    restored: list[int] = []
    for start in range(0, len(image_ids), CHUNK):
        chunk = one_of(Image.id, list(image_ids[start:start + CHUNK]))
        tagged = s.scalars(select(Image.id).join(Embedding, and_(Embedding.image_id == Image.id,
                                                                 Embedding.model_version_id == Image.model_version_id))
                           .where(chunk, Image.duplicate_of.is_(None))).all()
        original = Image.__table__.alias("original")
        duplicates = s.scalars(select(Image.id).join(original, original.c.id == Image.duplicate_of)
                               .where(chunk, original.c.status == TAGGED)).all()
        for ids, status in ((tagged, TAGGED), (duplicates, DUPLICATE)):
            if ids:
                s.execute(update(Image).where(one_of(Image.id, list(ids))).values(status=status, error=None))
        store.mark_images_changed(s, list(tagged))
        restored += [*tagged, *duplicates]
    return restored
