"""Decode processes that live as long as the process that tags (issue 23): a worker's tasks, one
after another, hand their files to the same processes instead of forking new ones for each task
(a DataLoader's workers live as long as one pass over one task's files).

A :class:`DecodePool` takes a task's files (:class:`tagger.decode.PhotoFiles`) in chunks of
``IO_BATCH``, a few chunks ahead of the model, and hands the decoded batches back in the files'
order (:func:`tagger.decode.collate`: the same batches as a DataLoader's, so the same results).
Tensors cross by shared memory (``torch.multiprocessing``). A stream left early (a cancelled job)
is abandoned: what its chunks still bring back is dropped, and chunks not yet started are
skipped. A decode process that dies (a decoder crashing on a file, the OOM killer) breaks the
pool: the task fails with one line and runs again (its lease), on a new pool.

On a GPU, CPU-decoded batches are pinned for a non-blocking copy on a thread of their own, a
couple of batches ahead of the model (:func:`ahead`, as a DataLoader's pin-memory thread).

Processes start once per pool and end with this process: daemons, which also leave by
themselves when their parent is gone (killed). One pool serves one stream at a time; a worker
running several tasks at once (``--concurrency``, threads) gets a pool per task in flight.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.multiprocessing as mp

from tagger.decode import IO_BATCH, PhotoFiles, collate

log = logging.getLogger(__name__)

AHEAD = 2  # chunks in flight per decode process (as a DataLoader's prefetch_factor)
POLL_SECONDS = 2.0  # how often a waiting side checks that the other is still there


class DecodeWorkerDied(RuntimeError):
    pass


def _serve(tasks: Any, results: Any, current: Any) -> None:
    """A decode process: chunks in, collated batches out, until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the parent's to handle
    torch.set_num_threads(1)
    # The process that started this one (with a fork server, not the OS parent): gone = orphaned.
    parent = mp.parent_process()
    while True:
        try:
            msg = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return
            continue
        if msg is None:
            return
        stream, seq, files = msg
        if stream != current.value:  # left early: not worth decoding
            results.put((stream, seq, None))
            continue
        try:
            batch: Any = collate([files[i] for i in range(len(files))])
        except Exception as exc:  # PhotoFiles turns a file's errors into reasons; this is a bug
            batch = RuntimeError(f"decoding failed: {type(exc).__name__}: {exc}")
        results.put((stream, seq, batch))


class DecodePool:
    """``workers`` decode processes and their two queues."""

    def __init__(self, workers: int, context: str | None = None) -> None:
        ctx = mp.get_context(context or "fork")
        self.workers, self.owner = workers, os.getpid()
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        self.current = ctx.Value("q", 0, lock=False)
        self.broken = False
        self.procs = [ctx.Process(target=_serve, args=(self.tasks, self.results, self.current),
                                  name=f"tagscope-decode-{n}", daemon=True) for n in range(workers)]
        for p in self.procs:
            p.start()
        log.info("decode pool: %d processes (%s)", workers, ctx.get_start_method())

    def batches(self, files: PhotoFiles, chunk: int = IO_BATCH) -> Iterator[dict[str, Any]]:
        """The collated batches of ``files``, ``chunk`` files each, in order."""
        self.current.value += 1
        stream = self.current.value
        starts = list(range(0, len(files), chunk))
        sent = done = 0
        held: dict[int, Any] = {}
        try:
            while done < len(starts):
                while sent < len(starts) and sent - done < AHEAD * self.workers:
                    self.tasks.put((stream, sent, files.part(starts[sent], starts[sent] + chunk)))
                    sent += 1
                while done not in held:
                    got_stream, seq, batch = self._next()
                    if got_stream == stream:
                        held[seq] = batch
                batch = held.pop(done)
                done += 1
                if isinstance(batch, Exception):
                    raise batch
                yield batch
        finally:
            if done < len(starts):
                self.current.value += 1  # abandoned: the chunks still queued are skipped

    def _next(self) -> tuple[int, int, Any]:
        while True:
            try:
                return self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if all(p.is_alive() for p in self.procs):
                    continue
                self._fail()
            except (OSError, EOFError):  # a batch whose sender died before its tensors were fetched
                self._fail()

    def _fail(self) -> None:
        time.sleep(0.1)  # let a dying process be reaped
        dead = [p for p in self.procs if not p.is_alive()]
        self.close()
        who = f"decode process {dead[0].pid} died (exit code {dead[0].exitcode})" if dead else "a decode process died"
        raise DecodeWorkerDied(f"{who} while decoding this task's files: the task runs again on new decode "
                               "processes") from None

    def close(self) -> None:
        self.broken = True
        for _ in self.procs:
            try:
                self.tasks.put_nowait(None)
            except Exception:  # a queue whose reader is gone
                pass
        for p in self.procs:
            p.join(timeout=1)
            if p.is_alive():
                p.kill()
                p.join(timeout=1)


def ahead(batches: Iterator[dict[str, Any]], prepare: Callable[[dict[str, Any]], dict[str, Any]],
          depth: int = 2) -> Iterator[dict[str, Any]]:
    """``prepare(batch)`` for each batch on a thread of its own, up to ``depth`` batches ahead of
    the consumer (pinning pixels for a non-blocking copy to the GPU, as a DataLoader's pin-memory
    thread did). Closing this generator stops the thread before returning, so ``batches`` may be
    closed next."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=POLL_SECONDS / 4)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for batch in batches:
                if not put(("batch", prepare(batch))):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=run, name="tagscope-prepare", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = out.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


_free: list[DecodePool] = []
_lock = threading.Lock()


class lease:  # noqa: N801 - used as a context manager, like open()
    """A pool of ``workers`` processes for one stream: a free one of this process, else a new one
    (started with ``context``); back to the free list afterwards unless it broke."""

    def __init__(self, workers: int, context: str | None = None) -> None:
        self.workers, self.context = workers, context
        self.pool: DecodePool | None = None

    def __enter__(self) -> DecodePool:
        with _lock:
            # A forked copy of this process (a server's worker) inherits the list, not the pools.
            _free[:] = [pool for pool in _free if pool.owner == os.getpid()]
            for n, pool in enumerate(_free):
                if pool.workers == self.workers and not pool.broken and all(p.is_alive() for p in pool.procs):
                    self.pool = _free.pop(n)
                    return self.pool
            stale, _free[:] = list(_free), []  # another size of pool (settings changed), or broken
        for pool in stale:
            pool.close()
        self.pool = DecodePool(self.workers, self.context)
        return self.pool

    def __exit__(self, *exc: Any) -> None:
        pool, self.pool = self.pool, None
        if pool is None or pool.broken:
            return
        with _lock:
            _free.append(pool)


def shutdown() -> None:
    """Stop this process's free pools (tests; a process's exit does it by itself)."""
    with _lock:
        pools, _free[:] = list(_free), []
    for pool in pools:
        pool.close()
