"""How an index stands against the store, without loading it: ``tagscope index status``, and
whether a merge should start a rebuild (:func:`upgrade_reason`)."""

from __future__ import annotations

from typing import Any

from core.db import Database
from core.settings import Settings
from indexer import files, kinds, store
from indexer.kinds import IndexShape
from indexer.store import StoreVersion


def wanted_kind(settings: Settings, version: str) -> str:
    """The kind this version's index should be: the ``index_kind`` setting when it names one;
    with ``auto``, the kind the last ``tagscope index rebuild --kind`` asked for (it sticks until
    a rebuild asks for another, ``--kind auto`` included), else auto."""
    if settings.index_kind != "auto":
        return settings.index_kind
    return str(files.rebuild_status(settings.index_dir, version).get("asked") or "auto")


def upgrade_reason(settings: Settings, db: Database, mv: StoreVersion, shape: IndexShape) -> str | None:
    """Why an index of ``shape`` should be rebuilt now (:func:`indexer.kinds.rebuild_reason` for
    :func:`wanted_kind`), or None; also None while the store holds too few embeddings to train
    the kind it would become."""
    # Only a graph can hold tombstones; elsewhere the index holds what the store does.
    n = store.count(db, mv.id) if shape.kind == "hnsw" else shape.count
    kind = wanted_kind(settings, mv.version)
    reason = kinds.rebuild_reason(shape, n, kind)
    if reason is None or n < kinds.train_minimum(kinds.resolve_kind(kind, n), n):
        return None
    return reason


def index_status(settings: Settings, db: Database, mv: StoreVersion) -> dict[str, Any]:
    """Kind, size, file, and freshness (changes not yet applied, embeddings stored) of one index;
    ``rebuild``: the last rebuild's record and whether one runs; ``rebuild_wanted``: why the index
    should be rebuilt (a merge starts that in the background), or None. Read from the files
    beside the index and SQL counts: the index itself is not loaded."""
    folder = settings.index_dir
    path = files.index_path(folder, mv.version)
    exists = path.exists()
    meta = files.read_meta(folder, mv.version) if exists else {}
    shape = files.saved_shape(folder, mv.version)
    pending = store.pending_changes(db, mv.id)
    return {"version": mv.version, "kind": meta.get("kind") or "flat",
            "factory": meta.get("factory") or kinds.factory_string("flat", 0, mv.dim),
            "size": files.saved_count(folder, mv.version), "dim": mv.dim, "path": str(path) if exists else None,
            "file_bytes": path.stat().st_size if exists else 0, "saved_at": path.stat().st_mtime if exists else None,
            "pending_changes": pending, "stored_embeddings": store.count_all(db, mv.id), "fresh": pending == 0,
            "rebuild": files.rebuild_status(folder, mv.version),
            "rebuild_wanted": upgrade_reason(settings, db, mv, shape) if shape is not None else None}
