"""Tagging one batch of images for a job: the unit of work a Celery task runs (or the CLI runs
in-process).

Decode in processes that live as long as this one (:mod:`tagger.decode_pool`) at the size the
model needs (:mod:`tagger.decode`; nvJPEG on CUDA), embed and score in batches
(:class:`mkt.runner.ImageRunner`: bf16 autocast on CUDA), and store each image's best label
scores and its embedding in SQL in one transaction and a few bulk statements per batch on a
writer thread (:mod:`tagger.batch_store`, :mod:`tagger.writer`), the three stages overlapping;
the vector index follows within seconds (:mod:`indexer.sync`). With the job's ``ocr``, a fourth
stage reads the words in the photos from an image the same decode made, on a thread of its own,
and the writer stores them with the batch (:mod:`tagger.ocr_stage`).
The job row says which model version and result parameters to use; this machine's settings say
on which device, in which batch size, with how many decode workers. The task that runs the
pipeline loads the database, the job and its model once and hands them over as a :class:`Work`
(:func:`tagger.jobs.tasks.load_work`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from sqlalchemy import select
from torch.utils.data import DataLoader

from core.db import Database
from core.media.raw import fork_is_safe
from core.schema import Image
from core.settings import Settings
from core.sql_in import one_of
from indexer.store import StoreVersion
from indexer.sync import maybe_sync
from mkt.runner import ImageRunner
from mkt.tagmodel import ImageEmbeddings, TagModel
from tagger import decode_pool
from tagger.batch_store import Encoded, store_batch
from tagger.decode import IO_BATCH, PhotoFiles, collate, describe, rebatch, to_device
from tagger.ocr_stage import OCR_CHUNK, TextReader
from tagger.params import JobInfo, JobParams
from tagger.text_store import current_readings
from tagger.video_frames import fold_videos
from tagger.vocabulary import label_embeddings, vocabulary
from tagger.writer import BatchWriter

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (newly done, newly failed)

_runners: dict[tuple[int, str, int], ImageRunner] = {}  # one per loaded model: compiled once


def runner_for(model: TagModel, settings: Settings) -> ImageRunner:
    key = (id(model), settings.amp, settings.compile)
    if key not in _runners or _runners[key].model is not model:
        _runners.clear()
        _runners[key] = ImageRunner(model, amp=settings.amp, compile=bool(settings.compile))
    return _runners[key]


@dataclass(frozen=True)
class Work:
    """What the pipeline is handed for one job: this machine's settings, the database, the job
    row, the job's model (loaded on this machine's device, its version checked), the store
    key of that model version, and whether the job is still running (asked before each batch:
    False once it was cancelled)."""

    settings: Settings
    db: Database
    job: JobInfo
    model: TagModel
    version: StoreVersion
    running: Callable[[], bool]


def tag_images(work: Work, image_ids: Sequence[int], progress: ProgressFn | None = None) -> tuple[int, int, bool]:
    """Tag ``image_ids`` for the work's job: (done, failed, complete); not complete when the job
    stopped running meanwhile (cancelled), checked before each batch. Idempotent: safe to retry.

    Three stages overlap: decode workers (processes), the model (this thread), the writer (a
    thread: :class:`tagger.writer.BatchWriter`). The log says where the time went."""
    if not image_ids:
        return 0, 0, True
    settings, db, job, model = work.settings, work.db, work.job, work.model
    job_id = job.id
    with db.session() as s:
        items = [(i, raw) for i, raw in s.execute(select(Image.id, Image.path_raw).where(one_of(Image.id, image_ids))
                                                  .order_by(Image.id))]
    runner = runner_for(model, settings)
    label_ids, label_emb = label_embeddings(model, vocabulary(db), db, job.model_version_id)
    counts, clock = [0, 0], dict.fromkeys(("decode wait", "device decode", "model", "writer wait"), 0.0)

    def write(item: tuple[dict[str, Any], Encoded]) -> None:
        texts = reader.collect(item[0]) if reader is not None else None
        n_ok, n_failed = store_batch(db, item[0], item[1], job.model_version_id, job_id, texts)
        counts[0] += n_ok
        counts[1] += n_failed
        if progress:
            progress(n_ok, n_failed)
        if settings.keep_index:
            maybe_sync(settings, db, work.version)  # searchable while the job runs

    complete = True
    t0 = tick = time.perf_counter()
    # OCR (the job's `ocr`): the decoded photos' text read on a thread of its own, stored with each batch;
    # a photo already read for the bytes it holds now keeps its reading (a model upgrade, --retag)
    read = current_readings(db, [i for i, _ in items]) if job.params.ocr else None
    with (TextReader(str(model.device)) if job.params.ocr else nullcontext()) as reader, \
            _decoded(settings, runner, items, job.params, job_id, read) as (loader, batch_size), \
            BatchWriter(write) as writer:
        for batch in rebatch(reader.feed(loader) if reader is not None else loader, batch_size):
            tick = _lap(clock, "decode wait", tick)
            if not work.running():
                log.info("job %d is no longer running: stopping", job_id)
                complete = False
                break
            pixels = to_device(batch, runner.geometry, model.device, job.params.max_pixels) if batch["ok"] else None
            tick = _lap(clock, "device decode", tick)
            encoded = _embed_and_score(runner, batch, pixels, label_ids, label_emb, job.params, batch_size)
            tick = _lap(clock, "model", tick)
            writer.put((batch, encoded))
            tick = _lap(clock, "writer wait", tick)
    log.info("job %d: %d images in %.2f s (%s); until the last write: %.2f s", job_id, len(items),
             tick - t0, ", ".join(f"{k} {v:.2f} s" for k, v in clock.items()), time.perf_counter() - t0)
    return counts[0], counts[1], complete


def _lap(clock: dict[str, float], stage: str, since: float) -> float:
    now = time.perf_counter()
    clock[stage] += now - since
    return now


@contextmanager
def _decoded(settings: Settings, runner: ImageRunner, items: list[tuple[int, bytes]], params: JobParams,
             job_id: int, read: dict[int, str] | None = None) -> Iterator[tuple[Iterable[dict[str, Any]], int]]:
    """The task's files decoded in small batches (``IO_BATCH``), in order, and the model's batch
    size: by this process's long-lived decode processes (:mod:`tagger.decode_pool`), or here
    with no decode workers. With OCR, every file decodes on the CPU (:mod:`tagger.decode`)."""
    device, max_pixels = runner.device, params.max_pixels
    gpu_share = settings.gpu_decode if device.type == "cuda" and runner.geometry is not None and not params.ocr \
        else 0.0
    batch_size, workers = settings.batch_for(device.type), settings.workers_for(device.type)
    log.info("job %d: %d images on %s (batch %d, %d decode workers, %s%s)", job_id, len(items), runner.describe(),
             batch_size, workers, describe(runner.geometry, gpu_share), ", OCR" if params.ocr else "")
    files = PhotoFiles(items, runner.model.preprocess, max_pixels, runner.geometry, gpu_share, ocr=params.ocr,
                       read=read)
    if not workers:
        yield DataLoader(files, batch_size=min(IO_BATCH, batch_size), num_workers=0, collate_fn=collate), batch_size
        return
    # Decode processes are forked, unless this process ran LibRaw (a RAW thumbnail, an in-process
    # decode): its OpenMP pool does not survive a fork, so they start from a clean fork server then.
    # JPEG bytes bound for nvJPEG are not pinned: it copies them itself, and pinning 3 MB per
    # photo would cost more than the copy saves.
    pin = device.type == "cuda" and gpu_share == 0
    with decode_pool.lease(workers, None if fork_is_safe() else "forkserver") as pool:
        chunk = min(OCR_CHUNK if params.ocr else IO_BATCH, batch_size)  # OCR images in flight: a few MB each
        with closing(pool.batches(files, chunk)) as batches:
            if not pin:
                yield batches, batch_size
                return
            with closing(decode_pool.ahead(batches, _pin)) as pinned:  # stopped before batches closes
                yield pinned, batch_size


def _pin(batch: dict[str, Any]) -> dict[str, Any]:
    if batch["pixels"] is not None:
        batch["pixels"] = batch["pixels"].pin_memory()
    return batch


def as_stored(emb: ImageEmbeddings) -> ImageEmbeddings:
    """The embeddings rounded to float16 as the store keeps them: tags scored from them are the
    tags that scoring the stored embeddings later (new labels) gives."""
    patches = emb.patches.half().float() if emb.patches is not None else None
    return ImageEmbeddings(emb.global_.half().float(), patches)


def _embed_and_score(runner: ImageRunner, batch: dict[str, Any], pixels: torch.Tensor | None,
                     label_ids: list[int], label_emb: torch.Tensor, params: JobParams, batch_size: int) -> Encoded:
    if not batch["ok"]:
        return Encoded()
    emb = runner.embed(pixels)
    with torch.inference_mode():
        emb, scores, frames = fold_videos(runner, batch["ok"], as_stored(emb), label_emb if label_ids else None,
                                          batch_size, as_stored)
    best = _best_labels(scores, label_ids, params.top_n, params.min_score) if scores is not None else []
    patches = emb.patches.cpu().numpy() if emb.patches is not None and runner.with_patches else None
    ids = [it["id"] for it in batch["ok"]]
    return Encoded(ids, emb.global_.cpu().numpy(), patches, best,
                   {ids[n]: (f.times, f.vectors.cpu().numpy()) for n, f in frames.items()})


def _best_labels(scores: torch.Tensor, label_ids: list[int], top_n: int,
                 min_score: float | None) -> list[list[tuple[int, float]]]:
    """Per image: at most ``top_n`` (label id, score), best first, above ``min_score`` if set."""
    k = min(top_n, scores.shape[1])
    values, idx = scores.topk(k, dim=1)
    out = []
    for vals, cols in zip(values.tolist(), idx.tolist()):
        out.append([(label_ids[c], v) for v, c in zip(vals, cols) if min_score is None or v >= min_score])
    return out
