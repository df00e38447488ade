"""What an index keeps on disk, read without FAISS: the index file, the metadata saved beside it
(kind, factory string, vector count), and the record of its last rebuild.

Light on purpose: ``tagscope index status``, ``tagscope status`` and the status on every page
read these files instead of loading the index to count it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from core.atomic import atomic_write
from indexer.kinds import IndexShape
from indexer.locks import is_held, rebuild_lock_path


def index_path(folder: str | Path, version: str) -> Path:
    return Path(folder) / f"{version}.faiss"


def meta_path(folder: str | Path, version: str) -> Path:
    return Path(folder) / f"{version}.json"


def read_meta(folder: str | Path, version: str) -> dict[str, Any]:
    """The metadata saved with ``version``'s index ({} when there is none or it cannot be read)."""
    try:
        meta = json.loads(meta_path(folder, version).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def saved_position(folder: str | Path, version: str) -> tuple[bool, int | None]:
    """Whether ``version`` has a saved index here, and the last entry of the change log it
    applied (:mod:`indexer.log`; None for an index saved before the log had positions)."""
    if not index_path(folder, version).exists():
        return False, None
    position = read_meta(folder, version).get("log_position")
    return True, None if position is None else int(position)


def saved_count(folder: str | Path, version: str) -> int:
    """How many vectors the saved index holds, from its metadata (0 without an index)."""
    if not index_path(folder, version).exists():
        return 0
    return int(read_meta(folder, version).get("count") or 0)


def saved_shape(folder: str | Path, version: str) -> IndexShape | None:
    """The saved index's kind, count and inverted lists, from its metadata (no index yet: an empty
    flat one, as :meth:`indexer.vector_index.VectorIndex.open` starts); None for metadata that does
    not say its kind (an index saved by an early release)."""
    if not index_path(folder, version).exists():
        return IndexShape("flat", 0)
    meta = read_meta(folder, version)
    if not meta.get("kind"):
        return None
    lists = re.match(r"IVF(\d+)", str(meta.get("factory") or ""))
    return IndexShape(str(meta["kind"]), int(meta.get("count") or 0), int(lists.group(1)) if lists else 0)


def rebuild_record_path(folder: str | Path, version: str) -> Path:
    return Path(folder) / f"{version}.rebuild.json"


def rebuild_status(folder: str | Path, version: str) -> dict[str, Any]:
    """The last rebuild's record (``{}`` if none), with ``running``: whether one runs now."""
    try:
        record = json.loads(rebuild_record_path(folder, version).read_text())
    except (OSError, ValueError):
        record = {}
    return record | {"running": is_held(rebuild_lock_path(folder, version))}


def write_rebuild_record(folder: str | Path, version: str, record: dict[str, Any]) -> None:
    atomic_write(rebuild_record_path(folder, version), lambda p: p.write_text(json.dumps(record, indent=1)))


def remove_files(folder: str | Path, version: str) -> int:
    """Delete a version's index and its bookkeeping files (a removed model version); how many."""
    n = 0
    for path in Path(folder).glob(f"{version}.*"):
        path.unlink(missing_ok=True)
        n += 1
    return n


def damaged_path(folder: str | Path, version: str) -> Path:
    """Where a damaged index file is set aside (the last one only), for a look at what broke."""
    return Path(folder) / f"{version}.faiss.damaged"


def damage_record_path(folder: str | Path, version: str) -> Path:
    return Path(folder) / f"{version}.damaged.json"


def damage_record(folder: str | Path, version: str) -> dict[str, Any]:
    """Why this copy's index file was set aside as damaged ({} when it was not, or a save replaced
    it since): ``error``, ``at``, and the ``pid`` of a rebuild started for it."""
    try:
        record = json.loads(damage_record_path(folder, version).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_damage_record(folder: str | Path, version: str, record: dict[str, Any]) -> None:
    atomic_write(damage_record_path(folder, version), lambda p: p.write_text(json.dumps(record, indent=1)))


def clear_damage_record(folder: str | Path, version: str) -> None:
    damage_record_path(folder, version).unlink(missing_ok=True)


def rebuilding(folder: str | Path, version: str) -> bool:
    """Whether a rebuild of ``version`` runs now, or the one started for its damaged file is alive."""
    if rebuild_status(folder, version).get("running"):
        return True
    pid = damage_record(folder, version).get("pid")
    return bool(pid) and _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child, and it ended (reaped now)
            return False
        return True
    except ChildProcessError:  # another process's: is it there?
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
