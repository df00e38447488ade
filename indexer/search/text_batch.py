"""Concurrent query texts share the text tower: a micro-batcher in front of ``encode_labels``.

A server's request threads each used to run the text tower on their own new text: on a few
cores eight of them at once queue for the CPU, each paying a whole forward pass for one short
text. Here a thread that needs a new text's embedding queues it; when no batch is running it
leads: it takes its own text and the others queued (up to ``max_batch``, same model only),
runs the encoder once, gives each caller its own row and wakes them. Threads that arrive while
a batch runs wait and go together in the next one, led by the first of them to wake (group
commit: no thread of its own, nothing to start or stop). When the previous batch held more than
one text (callers are known to come together) a leader waits up to ``linger_s`` for as many to
be queued before it starts. An error of the encoder reaches every caller of that batch; the
next batch starts clean.

A text's embedding does not depend on its batch mates (:func:`mkt.tagmodel.embed_label_texts`;
tests/test_text_batch.py checks batched against one at a time). The per-process LRU cache of
:meth:`indexer.search.searcher.Searcher.embed_query` stays in front: only texts it misses come here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

MAX_BATCH = 32  # texts per tower call at most (waitress' 8 request threads rarely queue more than 8)
LINGER_S = 0.002  # how long a leader waits for callers known to be coming


def encode_queries(model: Any, texts: Sequence[str]) -> torch.Tensor:
    """Query embeddings [N, D] (float32, on the CPU) of ``texts`` through ``model``'s label encoder."""
    with torch.inference_mode():  # thread-local: entered by whichever thread runs the batch
        return model.encode_labels(list(texts)).float().cpu()


class _Pending:
    __slots__ = ("owner", "text", "row", "error", "done")

    def __init__(self, owner: Any, text: str) -> None:
        self.owner, self.text = owner, text
        self.row: torch.Tensor | None = None
        self.error: BaseException | None = None
        self.done = False


class TextBatcher:
    """``embed(owner, text)`` -> ``encode(owner, [text])`` [1, D], batched with concurrent callers
    of the same ``owner`` (the model). ``calls``: encoder calls so far; ``texts``: texts encoded."""

    def __init__(self, encode: Callable[[Any, Sequence[str]], torch.Tensor] = encode_queries,
                 max_batch: int | None = None, linger_s: float = LINGER_S) -> None:
        self._encode = encode
        self.max_batch = max(1, max_batch if max_batch is not None else MAX_BATCH)
        self.linger_s = linger_s
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._running = False  # a leader is taking or encoding a batch
        self._last = 1  # the size of the previous batch: above 1, callers come together
        self.calls = 0
        self.texts = 0

    @property
    def queued(self) -> int:
        """Texts waiting for a batch (not those being encoded)."""
        with self._cond:
            return len(self._queue)

    def embed(self, owner: Any, text: str) -> torch.Tensor:
        """The embedding [1, D] of ``text`` through ``owner``, as ``encode(owner, [text])`` gives it."""
        if self.max_batch == 1:
            with self._cond:
                self.calls, self.texts = self.calls + 1, self.texts + 1
            return self._encode(owner, [text])
        item = _Pending(owner, text)
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()  # a lingering leader counts arrivals
            while self._running and not item.done:
                self._cond.wait()
            if not item.done:
                self._running = True
                batch = self._take(item)
        if not item.done:
            self._run(batch)
        if item.error is not None:
            raise item.error
        return item.row

    def _take(self, mine: _Pending) -> list[_Pending]:
        """(Lock held) ``mine`` and the oldest queued texts of its owner, after lingering for more
        when the previous batch showed concurrent callers; removed from the queue."""
        if self._last > 1:
            deadline = time.monotonic() + self.linger_s
            while len(self._queue) < min(self._last, self.max_batch):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        batch = [mine] + [p for p in self._queue if p is not mine and p.owner is mine.owner][:self.max_batch - 1]
        taken = {id(p) for p in batch}
        self._queue = [p for p in self._queue if id(p) not in taken]
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        """Encode ``batch`` once (each distinct text once) and hand out the rows, or the error."""
        texts = list(dict.fromkeys(p.text for p in batch))
        try:
            vectors = self._encode(batch[0].owner, texts)
            if len(vectors) != len(texts):
                raise RuntimeError(f"the text encoder gave {len(vectors)} rows for {len(texts)} texts")
            # a copy per caller: a cached row must not keep the whole batch's tensor alive
            rows = {t: vectors[n:n + 1].clone() for n, t in enumerate(texts)}
            for p in batch:
                p.row = rows[p.text]
        except BaseException as exc:  # every caller of the batch gets it, the leader too
            for p in batch:
                p.error = exc
        finally:
            with self._cond:
                for p in batch:
                    p.done = True
                self._running = False
                self._last = len(batch)
                self.calls, self.texts = self.calls + 1, self.texts + len(texts)
                self._cond.notify_all()
