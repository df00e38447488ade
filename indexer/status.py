"""How an index stands against the store, without loading it: ``tagscope index status``, and
whether a merge should start a rebuild (:func:`upgrade_reason`)."""

from __future__ import annotations

from typing import Any

from core.db import Database
from core.settings import Settings
from indexer import files, kinds, store
from indexer import log as index_log
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


def needs_build(folder, db: Database, mv: StoreVersion) -> str | None:
    """Why this machine's copy of ``mv``'s index (in ``folder``) cannot follow the change log and
    must be built from the store (the reason a rebuild records): it has no file (none yet, or its
    damaged file was set aside), or it fell behind the log's floor. None when applying the log's
    entries after its position brings it up to date (:func:`indexer.sync.sync_index`)."""
    saved, position = files.saved_position(folder, mv.version)
    if not saved:
        damaged = files.damage_record(folder, mv.version).get("error")
        return f"the index file was damaged: {damaged}" if damaged else "no index here yet"
    if position is not None and position < index_log.floor(db, mv.id):
        return "behind the change log's floor"
    return None


def index_status(settings: Settings, db: Database, mv: StoreVersion) -> dict[str, Any]:
    """Kind, size, file, and freshness of this machine's copy of one index: ``size`` counts its
    live vectors, ``tombstones`` the entries an HNSW graph keeps for photos re-tagged or gone
    (search drops them; a rebuild clears them), ``pending_changes`` the change log's entries it
    has not applied, ``fresh`` is true only when there are none; ``log``: the log's head and
    floor, ``copies``: every copy the database has heard from (:mod:`indexer.log`); ``rebuild``:
    the last rebuild's record and whether one runs; ``rebuild_wanted``: why the index should be
    rebuilt (a merge starts that in the background), or None; ``damaged``: why its file was set
    aside as damaged and whether it is being rebuilt, or None. Read from the files beside the
    index and SQL: the index itself is not loaded."""
    folder = settings.index_dir
    path = files.index_path(folder, mv.version)
    exists = path.exists()
    meta = files.read_meta(folder, mv.version) if exists else {}
    shape = files.saved_shape(folder, mv.version)
    stored = store.count_all(db, mv.id)
    floor = index_log.floor(db, mv.id)
    saved, position = files.saved_position(folder, mv.version)
    position = floor if saved and position is None else position
    if saved and position >= floor:
        pending = store.pending_changes(db, mv.id, position)
    else:  # no copy here, or one the log has left behind: it needs everything
        pending = stored
    entries = files.saved_count(folder, mv.version)
    kind = meta.get("kind") or "flat"
    tombstones = max(0, entries - stored) if kind == "hnsw" else 0
    return {"version": mv.version, "kind": kind,
            "factory": meta.get("factory") or kinds.factory_string("flat", 0, mv.dim),
            "size": entries - tombstones, "tombstones": tombstones, "dim": mv.dim,
            "path": str(path) if exists else None,
            "file_bytes": path.stat().st_size if exists else 0, "saved_at": path.stat().st_mtime if exists else None,
            "pending_changes": pending, "stored_embeddings": stored, "fresh": pending == 0 and (saved or not stored),
            "position": position, "log": {"head": index_log.head(db, mv.id), "floor": floor},
            "copies": [c.to_json() for c in index_log.copies(db, mv.id)],
            "rebuild": files.rebuild_status(folder, mv.version),
            "rebuild_wanted": upgrade_reason(settings, db, mv, shape) if shape is not None else None,
            "damaged": _damaged(folder, mv.version)}


def _damaged(folder, version: str) -> dict[str, Any] | None:
    """Why this copy's file was set aside as damaged (:mod:`indexer.damage`) and whether its
    rebuild runs; None when it was not (or a save has replaced it since)."""
    record = files.damage_record(folder, version)
    if not record:
        return None
    return {"error": record.get("error"), "at": record.get("at"), "rebuilding": files.rebuilding(folder, version)}
