"""How workers hand embeddings to the index: a spool folder and one merger at a time.

Workers do not write the index: they drop embedding batches into a spool folder
(:func:`spool_embeddings`, :func:`spool_removals`), and whoever holds the index lock merges
them (:func:`merge_spool`), so many workers can tag at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.atomic import atomic_write
from core.settings import Settings
from indexer.vector_index import VectorIndex

log = logging.getLogger(__name__)


def spool_dir(home: str | os.PathLike, version: str) -> Path:
    return Path(home) / "spool" / version


def spool_embeddings(folder: str | os.PathLike, ids: np.ndarray, vectors: np.ndarray) -> Path | None:
    """Atomically drop one batch of (ids, vectors) for a later :func:`merge_spool`."""
    if not len(ids):
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.npz"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, np.int64), vectors=np.asarray(vectors, np.float32))

    atomic_write(path, write)
    return path


def spool_removals(folder: str | os.PathLike, ids: np.ndarray) -> Path | None:
    """Atomically record ids to drop from the index (an image that now fails or is a duplicate)."""
    return spool_embeddings(folder, ids, np.zeros((len(ids), 0), np.float32))


@contextmanager
def index_lock(folder: str | os.PathLike, version: str, blocking: bool = True) -> Iterator[bool]:
    """Exclusive lock on one version's index (a file lock, so it also holds across processes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{version}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def merge_spool(index_folder: str | os.PathLike, spool: str | os.PathLike, version: str, dim: int,
                remove_ids: np.ndarray | None = None, blocking: bool = True) -> int | None:
    """Merge every spooled batch into the index of ``version`` and save it.

    Returns the number of vectors merged, or None if another process holds the lock and
    ``blocking`` is False. Spool files are deleted only after the index is saved, and adding
    is an upsert, so a crash in between merges the same batch again harmlessly.
    """
    with index_lock(index_folder, version, blocking) as locked:
        if not locked:
            return None
        files = sorted(Path(spool).glob("*.npz"), key=lambda p: p.stat().st_mtime) if Path(spool).exists() else []
        if not files and remove_ids is None:
            return 0
        index = VectorIndex.open(index_folder, version, dim)
        merged = 0
        for f in files:
            with np.load(f) as data:
                if data["vectors"].shape[1] == 0:  # a removal batch
                    index.remove(data["ids"])
                    continue
                index.add(data["ids"], data["vectors"])
                merged += len(data["ids"])
        if remove_ids is not None:
            index.remove(remove_ids)
        index.save()
        for f in files:
            f.unlink(missing_ok=True)
        log.info("merged %d vectors from %d spool files into %s (%d total)", merged, len(files), index.path,
                 len(index))
        return merged


def sync_index(settings: Settings, version: str, dim: int) -> int:
    """Merge spooled embeddings into the index of ``version`` (blocking on its lock)."""
    return merge_spool(settings.index_dir, spool_dir(settings.home, version), version, dim) or 0
