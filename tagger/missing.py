"""Files that went away, and files that came back: the two ends of MISSING.

A nightly run over a NAS share or a USB drive meets, sooner or later, a folder that is there but
empty: the share was not mounted (the mount point stays), the drive not plugged in. Taking that
for "every photo was deleted" would mark the whole library missing (out of search) and, once the
drive is back, tag every file again. So:

- a scanned folder in which the walk found no library file at all, while photos are registered
  under it, is taken for OFFLINE: its photos are left as they were, and the run says so in one
  line naming the fix (``--empty-ok`` when the folder really was emptied);
- so is a folder below it that held registered photos and in which the walk found none, when the
  folder is still there (empty: a mount point with nothing mounted, the usual case) or is a
  symbolic link whose target is gone (a drive's mount folder removed when it was unplugged):
  ``~/Pictures/nas`` unmounted leaves its photos alone while the rest of ``~/Pictures`` is
  scanned as usual. A folder that is no longer there at all was deleted: its photos are marked
  missing (they get their results back if the files return). The topmost such folder is named;
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

from core.db import Database
from core.files import display_path
from core.schema import DUPLICATE, MISSING, TAGGED, Embedding, Image
from core.sql_in import chunks, one_of
from indexer import store

log = logging.getLogger(__name__)


def folder_prefix(root: str | os.PathLike) -> str:
    """How the paths of the files under the folder ``root`` begin (stored form, trailing slash)."""
    return display_path(os.path.join(os.path.abspath(os.fsdecode(root)), ""))


def offline_message(root: str, registered: int) -> str:
    return (f"{root} holds no photos now but {registered} registered ones are under it: left as they were "
            "(an unmounted drive or share?); if they were deleted, run `tagscope tag` on it with --empty-ok")


class FoundFolders:
    """The folders that hold a library file the walk found, each with all its parents (stored
    form, trailing separator, as :func:`folder_prefix`): ``prefix in folders``."""

    def __init__(self) -> None:
        self.prefixes: set[str] = set()
        self._last: str | None = None

    def add(self, path: str) -> None:
        """``path`` (absolute, as the walk yields it) was found."""
        folder = os.path.dirname(path)
        if folder == self._last:  # the walk yields a folder's files one after another
            return
        self._last = folder
        while (prefix := display_path(os.path.join(folder, ""))) not in self.prefixes:
            self.prefixes.add(prefix)
            parent = os.path.dirname(folder)
            if parent == folder:
                return
            folder = parent

    def __contains__(self, prefix: str) -> bool:
        return prefix in self.prefixes


def mark_missing(db: Database, roots: Iterable[str | os.PathLike], found_ids: Iterable[int],
                 found: FoundFolders, empty_ok: bool = False) -> tuple[list[int], list[tuple[str, int]]]:
    """Images registered under a scanned folder that the walk no longer found become MISSING
    (out of the search index; rows, tags and embeddings stay, should the files come back).
    Those under a folder taken for an unmounted drive (:func:`offline_folders`) keep their state
    unless ``empty_ok`` (module docstring).
    Returns (the ids marked missing, [(folder, registered images left alone)])."""
    found_ids = set(found_ids)
    missing: list[int] = []
    offline: list[tuple[str, int]] = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        prefix = folder_prefix(root)
        with db.session() as s:
            ids = s.scalars(select(Image.id).where(Image.path.startswith(prefix, autoescape=True),
                                                   Image.status != MISSING)).all()
            gone = [i for i in ids if i not in found_ids]
            if gone and not empty_ok:
                kept = set()
                for folder, left in offline_folders(s, os.fsdecode(root), prefix, gone, found).items():
                    offline.append((folder, len(left)))
                    log.warning("%s", offline_message(folder, len(left)))
                    kept.update(left)
                gone = [i for i in gone if i not in kept]
            for chunk in chunks(gone):
                s.execute(update(Image).where(one_of(Image.id, chunk))
                          .values(status=MISSING, error="file no longer found"))
            store.mark_images_changed(s, gone)
        missing.extend(gone)
    return missing, offline


def offline_folders(s: Session, root: str, prefix: str, gone: list[int], found: FoundFolders) -> dict[str, list[int]]:
    """The ``gone`` images (registered under ``root``, not found) that are under a folder taken
    for an unmounted drive, by that folder: ``root`` itself when the walk found nothing under it,
    else the topmost folder below it without a found file that is still there or a link."""
    if prefix not in found:
        return {root: list(gone)}
    out: dict[str, list[int]] = {}
    tops: dict[str, str | None] = {}  # a gone image's folder -> its offline folder (None: deleted, or not empty)
    for chunk in chunks(gone):
        for image_id, path in s.execute(select(Image.id, Image.path).where(one_of(Image.id, chunk))):
            folder = os.path.dirname(path)
            if folder not in tops:
                tops[folder] = _unplugged(prefix, folder, found)
            if tops[folder] is not None:
                out.setdefault(tops[folder], []).append(image_id)
    return out


def _unplugged(prefix: str, folder: str, found: FoundFolders) -> str | None:
    """The topmost folder from below ``prefix`` down to ``folder`` in which nothing was found, when
    it still stands as an (empty) folder or a link (an unmounted drive); None when every one of
    them holds a found file (a file gone from a folder in use) or that folder is not there at all
    (deleted)."""
    current = prefix
    for part in filter(None, folder[len(prefix):].split(os.sep)):
        current = os.path.join(current, part)
        if os.path.join(current, "") not in found:
            return current if os.path.isdir(current) or os.path.islink(current) else None
    return None


def restore_returned(s: Session, image_ids: Sequence[int]) -> list[int]:
    """Missing images whose file is back unchanged: the tagged ones (an embedding of the version
    that tagged them is stored) become TAGGED again and go back into the index; duplicates of an
    original still present become DUPLICATE again. Returns the ids restored."""
    restored: list[int] = []
    for ids_chunk in chunks(image_ids):
        chunk = one_of(Image.id, ids_chunk)
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
