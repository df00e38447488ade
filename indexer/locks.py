"""File locks on one model version's index, held across processes (and machines sharing the folder)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (created if missing); yields False when ``blocking`` is
    False and another process holds it. The kernel drops it when its holder dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def index_lock(folder: str | Path, version: str, blocking: bool = True):
    """The lock whoever writes the index file of ``version`` holds (merges, the final swap of a rebuild)."""
    return file_lock(Path(folder) / f"{version}.lock", blocking)


def rebuild_lock_path(folder: str | Path, version: str) -> Path:
    """Held for the whole of a rebuild of ``version``'s index in this folder: at most one runs at a
    time (:mod:`indexer.rebuild`)."""
    return Path(folder) / f"{version}.rebuild.lock"


def is_held(path: Path) -> bool:
    """True when some process holds the lock on ``path`` now."""
    if not path.exists():
        return False
    with file_lock(path, blocking=False) as got:
        return not got
