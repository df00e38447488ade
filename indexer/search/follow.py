"""A search server keeps its own copy of the index current, and answers while it has none.

Every few seconds (at a query, never in its way) a background thread brings this machine's copy
up to the head of the index change log (:func:`indexer.sync.sync_index`: other machines' tagging
included), or builds it from the store when the server started on an empty home or fell behind
the log's floor; the searcher reloads the file when it changes. Until a copy exists,
:func:`exact_top` answers from the store itself: exact, slower (a scan of the stored embeddings).
The same holds while a damaged index file is rebuilt (:func:`damaged`, :mod:`indexer.damage`),
for ``tagscope search`` too, which says so in one line (:func:`from_store`).
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
from indexer.damage import set_aside, start_rebuild
from indexer.store import StoreVersion
from indexer.sync import sync_index
from indexer.vector_index import IndexDamaged, VectorIndex

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
