"""A folder of cached files, bounded in size: past the bound the least recently used go.

The web UI's thumbnails (:mod:`web.images`) are cached here, one file per key, in
``<home>/thumbs`` up to the ``thumb_cache_mb`` setting. When a file was last used is its
modification time: writing sets it, a hit moves it forward (at most once per ``TOUCH_S``: a
thumbnail shown all day is not written on each view). Each process keeps a running estimate of
the folder's size: counted from the folder (at its first write, and again when the count is
``RECOUNT_S`` old: other processes write there too), plus what it wrote since. When the estimate
passes the bound, the process counts the folder and removes the least recently used files until
it holds at most ``LOW_WATER`` of the bound, so that the next trim is some writes away. Files that
another process removed meanwhile are simply misses.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from core.atomic import atomic_write_bytes

TOUCH_S = 60.0  # a hit moves a file's use time forward when it is older than this
LOW_WATER = 0.9  # a trim leaves at most this share of the bound
RECOUNT_S = 30.0  # a process counts the folder again when its count is this old

_sizes: dict[Path, tuple[int, float]] = {}  # folder -> (bytes as last counted + written since, when counted)
_lock = threading.Lock()


class FileCache:
    """Files named ``<key><suffix>`` in ``folder``, ``max_bytes`` of them at most (0: none are kept)."""

    def __init__(self, folder: Path, max_bytes: int, suffix: str = ".jpg"):
        self.folder = Path(folder)
        self.max_bytes = max(0, int(max_bytes))
        self.suffix = suffix

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{self.suffix}"

    def get(self, key: str) -> bytes | None:
        """The cached bytes of ``key``, or None; a hit counts as a use."""
        path = self.path(key)
        try:
            data = path.read_bytes()
            if time.time() - path.stat().st_mtime > TOUCH_S:
                os.utime(path)
        except OSError:  # absent, or removed by a trim meanwhile
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        """Keep ``data`` as ``key`` (atomically: concurrent writers each write their own temporary
        file), then trim the folder when it is past the bound."""
        if self.max_bytes == 0:
            return
        atomic_write_bytes(self.path(key), data)
        with _lock:
            held, counted = _sizes.get(self.folder, (0, None))
            now = time.monotonic()
            if counted is None or now - counted > RECOUNT_S:
                held, counted = self._count(), now
            else:
                held += len(data)
            _sizes[self.folder] = (held, counted)
        if held > self.max_bytes:
            self.trim()

    def trim(self) -> int:
        """Count the folder and remove its least recently used files until it holds at most
        ``LOW_WATER`` of the bound; returns the files removed."""
        with _lock:
            files = self._files()
            held = sum(size for _, size, _ in files)
            removed = 0
            if held > self.max_bytes:
                goal = int(self.max_bytes * LOW_WATER)
                for _, size, path in sorted(files):  # least recently used first
                    if held <= goal:
                        break
                    try:
                        os.unlink(path)
                        removed += 1
                    except FileNotFoundError:
                        pass  # another process trimmed it
                    held -= size
            _sizes[self.folder] = (held, time.monotonic())
            return removed

    def _count(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _files(self) -> list[tuple[float, int, str]]:
        """(last use, bytes, path) of each cached file (one that vanished meanwhile left out)."""
        files = []
        try:
            with os.scandir(self.folder) as it:
                for entry in it:
                    if entry.name.endswith(self.suffix) and entry.is_file(follow_symlinks=False):
                        try:
                            st = entry.stat()
                        except OSError:
                            continue
                        files.append((st.st_mtime, st.st_size, entry.path))
        except FileNotFoundError:
            pass
        return files
