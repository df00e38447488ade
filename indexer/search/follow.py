"""A search server keeps its own copy of the index current, and answers while it has none.

Every few seconds (at a query, never in its way) a background thread brings this machine's copy
up to the head of the index change log (:func:`indexer.sync.sync_index`: other machines' tagging
included), or builds it from the store when the server started on an empty home or fell behind
the log's floor; the searcher reloads the file when it changes. Until a copy exists,
:func:`exact_top` answers from the store itself: exact, slower (a scan of the stored embeddings).
The same holds while a damaged index file is rebuilt (:func:`damaged`, :mod:`indexer.damage`),
for ``tagscope search`` too, which says so in one line (:func:`from_store`). A reader that is not a
server (``tagscope search``, ``saved run``) brings the copy up to date before it searches instead,
and answers from the store while a copy it has not got is built (:func:`catch_up`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from core.db import Database
from core.settings import Settings
from indexer import files, store
from indexer import log as index_log
from indexer.damage import set_aside, start_rebuild
from indexer.rebuild import RETRY_AFTER_S
from indexer.status import needs_build
from indexer.store import StoreVersion
from indexer.sync import sync_index
from indexer.vector_index import IndexDamaged, IndexSaveFailed, VectorIndex

log = logging.getLogger(__name__)

SYNC_EVERY_S = 2.0


class Follower:
    """Runs :func:`sync_index` for one version in the background, at most every ``every`` seconds."""

    def __init__(self, settings: Settings, every: float = SYNC_EVERY_S) -> None:
        self.settings = settings
        self.every = every
        self._last = -float("inf")
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self.error: str | None = None

    def poke(self, db: Database, version: StoreVersion, force: bool = False) -> None:
        """Start a catch-up unless one ran within ``every`` seconds (not with ``force``) or one is running."""
        now = time.monotonic()
        with self._guard:
            if (not force and now - self._last < self.every) or (self._thread is not None and self._thread.is_alive()):
                return
            self._last = now
            self._thread = threading.Thread(target=self._run, args=(db, version), name="tagscope-index-follow",
                                            daemon=True)
            self._thread.start()

    def _run(self, db: Database, version: StoreVersion) -> None:
        try:
            sync_index(self.settings, db, version, blocking=False, role="server")
            self.error = None
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the server
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("index catch-up failed: %s", self.error)

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def keep_following(poke: Callable[[], object], every: float = SYNC_EVERY_S) -> threading.Thread:
    """A daemon thread calling ``poke`` (a searcher's index(): it starts a catch-up when one is due)
    every ``every`` seconds, so an idle server's copy stays current too."""

    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                poke()
            except Exception as exc:  # noqa: BLE001 - no collection yet, a database hiccup: try again later
                log.debug("index follow: %s", exc)

    thread = threading.Thread(target=loop, name="tagscope-index-follow-loop", daemon=True)
    thread.start()
    return thread


def catch_up(settings: Settings, db: Database, version: StoreVersion) -> str | None:
    """What a reader that is not a server (``tagscope search``, ``saved run``: a searcher in this
    process, which follows no log in the background) does before it searches: this machine's copy
    is brought up to the head of the change log, other machines' tagging included (:func:`sync_index`).
    A copy that must be built from the store instead (:func:`indexer.status.needs_build`: none
    here, behind the log's floor, a damaged file) is built by a process of its own that outlives
    the command (:func:`indexer.damage.start_rebuild`), and the store answers meanwhile, exactly:
    returns the line that says so (None when the copy is current, or when the line is
    :func:`from_store`'s: a damaged file)."""
    folder, name = settings.index_dir, version.version
    try:
        if needs_build(folder, db, version) is None and sync_index(settings, db, version, role="cli",
                                                                   build=False) is not None:
            return None
    except (OSError, IndexSaveFailed) as exc:  # a folder it cannot write (a read-only home, a full disk)
        position = files.saved_position(folder, name)[1]
        if position is not None and index_log.head(db, version.id) <= position:
            return None  # nothing to apply
        why = (str(exc) or type(exc).__name__).splitlines()[0]
        return f"cannot bring the index here up to date ({why}): answering from the stored embeddings (exact, slower)"
    reason = needs_build(folder, db, version)  # again: the catch-up sets a file it finds damaged aside
    if reason is None or not store.count(db, version.id):
        return None
    last = files.rebuild_status(folder, name)
    failed = last.get("state") == "failed" and time.time() - last.get("finished_at", 0) < RETRY_AFTER_S
    if failed:
        todo = f"building it failed ({last.get('error')}): run `tagscope index rebuild`"
    else:
        todo = "building it in the background"
        if not files.rebuilding(folder, name):
            try:
                start_rebuild(settings, name)
            except OSError as exc:
                todo = f"cannot build it in the background ({exc}): run `tagscope index rebuild`"
    if files.damage_record(folder, name):
        return None  # :func:`from_store` says so
    return f"index {name[:16]}: {reason}: {todo}; answering from the stored embeddings meanwhile (exact, slower)"


def has_copy(settings: Settings, version: str) -> bool:
    return files.saved_position(settings.index_dir, version)[0]


def exact_top(db: Database, version_id: int, dim: int, query: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` (ids, cosines) by a scan of every stored embedding: no index needed."""
    q = query.float().reshape(-1).cpu().numpy()
    best_ids, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
    for ids, vectors, _ in store.scan(db, version_id, dim):
        ids = np.concatenate([best_ids, ids])
        scores = np.concatenate([best_scores, vectors @ q])
        keep = np.argsort(-scores, kind="stable")[:n]
        best_ids, best_scores = ids[keep], scores[keep]
    return best_ids, best_scores


def damaged(settings: Settings, db: Database, version: StoreVersion, error: IndexDamaged,
            follower: Follower | None) -> VectorIndex:
    """What a searcher uses once its index file turned out damaged: the file is set aside
    (:func:`indexer.damage.set_aside`) and rebuilt in the background (by a server's catch-up, or a
    process the command line starts), and an empty stand-in serves meanwhile, so that
    :func:`from_store` answers. A file a writer had just replaced is loaded instead."""
    folder = settings.index_dir
    moved = set_aside(folder, version.version, version.dim, str(error))
    if not moved and not files.damage_record(folder, version.version):
        try:
            return VectorIndex.open(folder, version.version, version.dim)
        except IndexDamaged:
            pass  # it cannot be set aside (a read-only folder): the stand-in, from the store
    if follower is not None:
        follower.poke(db, version, force=True)
    elif moved:
        try:
            start_rebuild(settings, version.version)
        except OSError as exc:
            log.warning("cannot start a rebuild of index %s: %s", version.version, exc)
    return VectorIndex(folder, version.version, version.dim)


def from_store(settings: Settings, index: VectorIndex, serving: bool) -> str | None:
    """Why a search should be answered exactly from the store rather than by ``index`` (a line to
    tell the user), or None: ``index`` is an empty stand-in (nothing was loaded) because this
    machine's file was damaged, or, for a server (``serving``), because it has no copy yet."""
    if len(index) or index.loaded_mtime is not None:
        return None
    folder, name = settings.index_dir, index.version
    record = files.damage_record(folder, name)
    if record or files.index_path(folder, name).exists():  # there, but it could not be loaded
        todo = ("it is being rebuilt in the background" if files.rebuilding(folder, name)
                else "run `tagscope index rebuild` to rebuild it from the stored embeddings")
        return (f"the index of {name[:16]} is damaged ({record.get('error', 'it cannot be read')}): {todo}; "
                "answering from the stored embeddings meanwhile (exact, slower)")
    return "no index here yet: building it; answering from the stored embeddings meanwhile" if serving else None
