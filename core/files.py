"""Finding photo files on disk, robustly.

A photo folder can hold symlink loops, unreadable directories, sockets and file names that
are not valid UTF-8. Each of those becomes a skipped entry (with a log warning), never a crash
of the walk. Decoding the files is :mod:`core.media`' job (:func:`core.media.read.read_media`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SIDECAR_EXTENSIONS", "FoundFile", "display_path", "file_sha256", "walk_files"]

logger = logging.getLogger(__name__)

#: Metadata sidecars written by cameras, phones and photo managers; the walk ignores them entirely.
SIDECAR_EXTENSIONS: frozenset[str] = frozenset(
    {".xmp", ".aae", ".thm", ".ini", ".db", ".ds_store", ".json", ".lrv", ".pp3", ".dop"}
)


@dataclass(frozen=True)
class FoundFile:
    """A regular file found by :func:`walk_files`.

    ``path`` is ``os.fsdecode`` of the absolute path, so names that are not valid UTF-8 carry
    surrogate escapes: pass it back to ``open()`` as is, and use :func:`display_path` to show it.
    """

    path: str
    size: int
    mtime: float



def display_path(path: str | os.PathLike[str] | bytes) -> str:
    """Human-readable text for a path that may contain surrogate escapes.

    Undecodable bytes (``os.fsdecode`` turns byte 0xE9 into U+DCE9) are shown as ``\\xe9``; any
    other lone surrogate as ``\\udXXX``, and NUL as ``\\x00``. The result always encodes as UTF-8,
    so it is safe to log or store in PostgreSQL. It is for display only: it cannot be opened.
    """
    text = os.fsdecode(path)
    if "\x00" not in text:
        try:
            text.encode("utf-8")  # no surrogates (the usual name): shown as it is
            return text
        except UnicodeEncodeError:
            pass
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or code == 0:
            out.append(f"\\x{code:02x}" if code == 0 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time (OSError propagates)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _is_sidecar(name: str) -> bool:
    lower = name.lower()
    # splitext('.DS_Store') has no extension, so also compare the whole name.
    return os.path.splitext(lower)[1] in SIDECAR_EXTENSIONS or lower in SIDECAR_EXTENSIONS


def _wanted_name(name: str) -> bool:
    return not name.startswith(".") and not _is_sidecar(name)


def walk_files(roots: Iterable[str | os.PathLike[str]], follow_symlinks: bool = True) -> Iterator[FoundFile]:
    """Recursively yield the regular files under each root.

    A root may be a directory or a single file (a file named explicitly is yielded even if it is
    hidden or a sidecar). Paths are made absolute (lexically, symlinks are kept as written).
    Within each directory entries are visited in name order, depth first, so the output is
    deterministic. Hidden entries (name starting with ``.``) and :data:`SIDECAR_EXTENSIONS` files
    are skipped, as are sockets, FIFOs and devices.

    With ``follow_symlinks`` (the default) symlinked files and directories are followed; a
    symlink back to a directory on the current path (a loop) is skipped with a warning, so the
    walk always ends. Other duplicates are *not* removed: a directory reachable through two
    different paths is walked under both, since files are deduplicated by content hash later.
    Each path is yielded at most once, even when roots overlap. Without ``follow_symlinks``
    symlinks are ignored altogether.

    A broken symlink or an unreadable directory is skipped with a ``logging`` warning.

    Raises:
        FileNotFoundError: a root does not exist. All roots are checked when this function is
            called, before anything is yielded.
    """
    checked: list[tuple[str, os.stat_result | None]] = []
    seen_roots: set[str] = set()
    for root in roots:
        path = os.path.abspath(os.fsdecode(root))
        if path in seen_roots:
            continue
        seen_roots.add(path)
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            what = "is a broken symbolic link" if os.path.islink(path) else "does not exist"
            raise FileNotFoundError(errno.ENOENT, f"photo root {display_path(path)} {what}") from None
        except OSError as exc:
            # e.g. a parent directory without search permission: report it, like any
            # unreadable directory, but do not abort the other roots.
            logger.warning("skipping unreadable root %s: %s", display_path(path), exc.strerror or exc)
            st = None
        checked.append((path, st))
    return _walk_roots(checked, follow_symlinks)


def _walk_roots(roots: list[tuple[str, os.stat_result | None]], follow_symlinks: bool) -> Iterator[FoundFile]:
    # Directory paths already listed and files already yielded as explicit roots: together they
    # keep overlapping roots (e.g. "photos" and "photos/2020") from yielding a path twice.
    walked_dirs: set[str] = set()
    explicit_files: set[str] = set()
    for path, st in roots:
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            if path not in walked_dirs:
                yield from _walk_dir(path, st, follow_symlinks, walked_dirs, explicit_files)
        elif stat.S_ISREG(st.st_mode):
            parent, name = os.path.split(path)
            already_walked = (
                parent in walked_dirs and _wanted_name(name) and (follow_symlinks or not os.path.islink(path))
            )
            if path not in explicit_files and not already_walked:
                explicit_files.add(path)
                yield FoundFile(path=path, size=st.st_size, mtime=st.st_mtime)
        else:
            logger.warning("skipping %s: not a regular file or directory", display_path(path))


def _list_dir(path: str) -> list[os.DirEntry[str]] | None:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda entry: entry.name)
    except OSError as exc:
        logger.warning("skipping unreadable directory %s: %s", display_path(path), exc.strerror or exc)
        return None


def _walk_dir(
    top: str,
    top_stat: os.stat_result,
    follow_symlinks: bool,
    walked_dirs: set[str],
    explicit_files: set[str],
) -> Iterator[FoundFile]:
    walked_dirs.add(top)
    entries = _list_dir(top)
    if entries is None:
        return
    top_key = (top_stat.st_dev, top_stat.st_ino)
    # (dev, ino) of the directories on the current path from the root: meeting one of them
    # again means a symlink loop. An explicit stack, not recursion, so depth is unbounded.
    ancestors = {top_key}
    stack: list[tuple[Iterator[os.DirEntry[str]], tuple[int, int]]] = [(iter(entries), top_key)]
    while stack:
        it, key = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            ancestors.discard(key)
            continue
        name = entry.name
        if name.startswith("."):
            continue
        path = entry.path
        try:
            if entry.is_symlink() and not follow_symlinks:
                continue
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            logger.warning("skipping broken symbolic link %s", display_path(path))
            continue
        except OSError as exc:
            logger.warning("skipping %s: %s", display_path(path), exc.strerror or exc)
            continue

        if stat.S_ISDIR(st.st_mode):
            dir_key = (st.st_dev, st.st_ino)
            if dir_key in ancestors:
                logger.warning("skipping symbolic link loop %s", display_path(path))
                continue
            if path in walked_dirs:
                continue
            walked_dirs.add(path)
            children = _list_dir(path)
            if children is not None:
                ancestors.add(dir_key)
                stack.append((iter(children), dir_key))
        elif stat.S_ISREG(st.st_mode):
            if _is_sidecar(name) or path in explicit_files:
                continue
            yield FoundFile(path=path, size=st.st_size, mtime=st.st_mtime)
        else:
            logger.debug("skipping special file %s", display_path(path))
