"""The OCR stage of the tagging pipeline, and the text job that reads tagged photos without
embedding them again.

Decode workers hand each photo's OCR images over beside the model's pixels (``ocr``: see
:mod:`tagger.decode`), from the same read and decode of the file. :meth:`TextReader.feed` takes
them out of each decoded batch as it arrives and queues them for a thread of their own (ONNX
Runtime works outside the GIL, so OCR overlaps the model); at most ``ahead`` photos wait, so a
slow OCR pushes back on decoding instead of piling images up in memory. The writer thread
collects each batch's readings (:meth:`TextReader.collect`) and stores them in the batch's
transaction (:mod:`tagger.text_store`). One photo's failure is its reading's reason, the photo
tagged all the same; an engine that cannot start (``rapidocr`` missing on this worker) is every
photo's reason, naming the package.

A video is read in the frames the pipeline already decoded; a line read again in a later frame
is kept once (its first frame).

:func:`read_texts` is the text job's unit of work (:mod:`tagger.jobs.tasks` runs it for a job of
kind ``text``): decode for OCR only, read, store, no model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from typing import Any

from sqlalchemy import select

from core.db import Database
from core.media.raw import fork_is_safe
from core.schema import DUPLICATE, TAGGED, Image
from core.settings import Settings
from core.sql_in import one_of
from core.words import fold
from mkt.ocr import OcrUnavailable, engine_for, require
from tagger import decode_pool
from tagger.decode import IO_BATCH, PhotoFiles, collate
from tagger.text_store import PhotoReading, Texts, mark_job, put_readings
from tagger.writer import BatchWriter

log = logging.getLogger(__name__)

AHEAD = 8  # photos decoded for OCR and not read yet, at most (up to 9 MB each)
# Files per decode chunk with OCR on: each brings a 2,000 px image (up to 9 MB) back, and a decode
# pool keeps 2 chunks per process in flight (16 files a chunk would be 288 MB a process).
OCR_CHUNK = 4


def job_ocr(settings: Settings, echo: Callable[[str], None] = lambda _m: None) -> bool:
    """Whether a job queued here reads text (``ocr``): ``1`` needs the engine (an error naming the
    package when it cannot be imported), ``auto`` warns once and goes without it."""
    if settings.ocr == "0":
        return False
    try:
        require()
    except OcrUnavailable as exc:
        if settings.ocr == "1":
            raise
        echo(f"warning: no text read in photos this run: {exc}")
        return False
    return True


class TextReader:
    """OCR for one stream of decoded batches, on this machine's ``device`` (CUDA through ONNX
    Runtime when it can, else the CPU)."""

    def __init__(self, device: str, ahead: int = AHEAD) -> None:
        try:
            self.engine = engine_for(device)
            self.engine_id, self.unavailable = self.engine.id, None
        except OcrUnavailable as exc:
            log.warning("%s", exc)
            self.engine, self.engine_id, self.unavailable = None, "rapidocr (unavailable)", str(exc)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tagscope-ocr")
        self._room = threading.Semaphore(ahead)

    def feed(self, batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The batches, each decoded photo's OCR images queued for reading (``text``: its future)."""
        for batch in batches:
            for item in batch["ok"]:
                images = item.pop("ocr", None)
                if images is not None:
                    item["text"] = self._submit(images)
            yield batch

    def _submit(self, images: list[tuple[Any, ...]] | str) -> Future:
        if isinstance(images, str) or self.engine is None:
            done: Future = Future()
            done.set_result(PhotoReading(error=images if isinstance(images, str) else self.unavailable))
            return done
        self._room.acquire()
        future = self._pool.submit(self._read, images)
        future.add_done_callback(lambda _f: self._room.release())
        return future

    def _read(self, images: list[tuple[Any, ...]]) -> PhotoReading:
        lines: list = []
        earlier: set[str] = set()  # what a video's earlier frames read
        for frame_ms, pixels, scale in images:
            got = self.engine.read_many([(pixels.numpy(), scale)])[0]
            if got.error:
                return PhotoReading(error=got.error if frame_ms is None else f"{got.error} (frame at {frame_ms} ms)")
            lines.extend((frame_ms, line) for line in got.lines if fold(line.text) not in earlier)
            earlier.update(fold(line.text) for line in got.lines)
        return PhotoReading(lines)

    def collect(self, batch: dict[str, Any]) -> Texts:
        """The readings of a batch's decoded photos (waits for those still being read)."""
        readings = {}
        for item in batch["ok"]:
            future = item.pop("text", None)
            if future is not None:
                readings[item["id"]] = future.result()
        return Texts(readings, self.engine_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TextReader:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def read_texts(settings: Settings, db: Database, job_id: int, image_ids: Sequence[int], max_pixels: int,
               running: Callable[[], bool], progress: Callable[[int, int], None] | None = None,
               ) -> tuple[int, int, bool]:
    """A text job's unit of work: read the text of ``image_ids`` (those still tagged), store it,
    nothing else. Returns (read, failed, complete); not complete when the job stopped running."""
    with db.session() as s:
        items = [(i, raw) for i, raw in s.execute(select(Image.id, Image.path_raw).where(
            one_of(Image.id, list(image_ids)), Image.status.in_((TAGGED, DUPLICATE))).order_by(Image.id))]
    counts, complete = [0, 0], True
    device = settings.resolved_device()

    def write(batch: dict[str, Any]) -> None:
        texts = reader.collect(batch)
        for it in batch["failed"]:  # the file no longer decodes: why, as this photo's reading
            texts.readings[it["id"]] = PhotoReading(error=it["error"])
        failed = sum(1 for r in texts.readings.values() if r.error)
        with db.session() as s:
            put_readings(s, texts, {it["id"]: it.get("hash") for it in batch["ok"]})
            mark_job(s, sorted(texts.readings), job_id)
        counts[0] += len(texts.readings) - failed
        counts[1] += failed
        if progress:
            progress(len(texts.readings) - failed, failed)

    files = PhotoFiles(items, None, max_pixels, ocr=True)
    with TextReader(device) as reader, _decoded(files, settings.workers_for(device)) as batches, \
            BatchWriter(write, name="tagscope-text-writer") as writer:
        for batch in reader.feed(batches):
            if not running():
                log.info("job %d is no longer running: stopping", job_id)
                complete = False
                break
            writer.put(batch)
    return counts[0], counts[1], complete


@contextmanager
def _decoded(files: PhotoFiles, workers: int) -> Iterator[Iterable[dict[str, Any]]]:
    """``files`` decoded in order: in chunks of ``OCR_CHUNK`` by this process's decode pool, or here
    ``IO_BATCH`` at a time."""
    if not workers:
        yield (collate([files[i] for i in range(start, min(start + IO_BATCH, len(files)))])
               for start in range(0, len(files), IO_BATCH))
        return
    with decode_pool.lease(workers, None if fork_is_safe() else "forkserver") as pool:
        with closing(pool.batches(files, OCR_CHUNK)) as batches:
            yield batches
