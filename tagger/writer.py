"""The write stage of the tagging pipeline: a thread that stores batches while the model embeds
the next ones and the decode workers read the ones after.

SQL drivers and FAISS release the GIL while they work, so on a GPU machine the writes overlap
the model completely; the queue is short (``depth`` batches) so that a slow database pushes back
on the model instead of piling decoded batches up in memory. The first error stops the writer
and is raised in the caller's thread at its next :meth:`BatchWriter.put` or at
:meth:`BatchWriter.close`; what was stored before it stays stored (one transaction per batch).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class BatchWriter:
    """Runs ``store(item)`` for each :meth:`put` item, in order, on its own thread."""

    def __init__(self, store: Callable[[Any], None], depth: int = 2, name: str = "tagscope-writer") -> None:
        self._store = store
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None:  # after an error, drain without storing
                try:
                    self._store(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: Any) -> None:
        """Queue ``item`` (blocks while the queue is full); raises the writer's error, if any."""
        self._raise()
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every queued item to be stored; raises the writer's error, if any."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller failed: finish what is queued (it is valid) but keep the caller's error
            try:
                self.close()
            except BaseException:  # noqa: BLE001
                pass
