"""Tagging one batch of images for a job: the unit of work a Celery task runs (or the CLI runs
in-process).

Decode in DataLoader worker processes, embed and score in batches under
``torch.inference_mode`` (AMP on CUDA), store each image's best label scores in SQL and spool its
embedding for the vector index. The job row says which model version and result parameters to
use; this machine's settings say on which device, in which batch size, with how many decode
workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from sqlalchemy import delete, func, insert, select, update
from torch.utils.data import DataLoader, Dataset

from core.db import DUPLICATE, FAILED, TAGGED, Database, Image, Tag, get_database, utcnow
from core.images import ImageDecodeError, read_image
from core.settings import Settings
from indexer.spool import spool_dir, spool_embeddings, spool_removals, sync_index
from mkt.tagmodel import TagModel
from tagger.jobs import JobParams, count_progress, finish_if_complete, load_job, load_job_model
from tagger.vocabulary import label_embeddings, vocabulary

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (newly done, newly failed)


# -- decoding in DataLoader workers -----------------------------------------------------------

class _ImageFiles(Dataset):
    def __init__(self, items: Sequence[tuple[int, bytes]], preprocess: Callable, max_pixels: int) -> None:
        self.items = items
        self.preprocess = preprocess
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image_id, raw = self.items[i]
        try:
            image, info, digest = read_image(os.fsdecode(raw), max_pixels=self.max_pixels)
            return {"id": image_id, "pixels": self.preprocess(image), "hash": digest,
                    "width": info.width, "height": info.height, "format": info.format, "error": None}
        except ImageDecodeError as exc:
            return {"id": image_id, "pixels": None, "error": exc.reason}
        except Exception as exc:  # a transform failing on odd pixels must not stop the job
            return {"id": image_id, "pixels": None, "error": f"cannot process image: {type(exc).__name__}: {exc}"}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [it for it in items if it["pixels"] is not None]
    return {
        "ok": ok,
        "pixels": torch.stack([it["pixels"] for it in ok]) if ok else None,
        "failed": [it for it in items if it["pixels"] is None],
    }


# -- tagging -----------------------------------------------------------------------------------

def tag_images(settings: Settings, job_id: int, image_ids: Sequence[int],
               progress: ProgressFn | None = None) -> tuple[int, int]:
    """Tag ``image_ids`` for job ``job_id``; returns (done, failed). Idempotent: safe to retry."""
    db = get_database(settings.db_url)
    job = load_job(db, job_id)
    with db.session() as s:
        items = [(i, raw) for i, raw in s.execute(select(Image.id, Image.path_raw).where(Image.id.in_(image_ids))
                                                  .order_by(Image.id))]
    model = load_job_model(db, job, settings.resolved_device())
    label_ids, label_emb = label_embeddings(model, vocabulary(db))
    log.info("job %d: %d images on %s (batch %d, %d decode workers)", job_id, len(items), model.device,
             settings.batch_size, settings.loader_workers)
    loader = DataLoader(_ImageFiles(items, model.preprocess, job.params.max_pixels), batch_size=settings.batch_size,
                        num_workers=settings.loader_workers, collate_fn=_collate,
                        pin_memory=model.device.type == "cuda", persistent_workers=False)
    spool = spool_dir(settings.home, model.version)
    done = failed = 0
    for batch in loader:
        ids, vectors, rows = _embed_and_score(model, batch, label_ids, label_emb, job.params)
        n_ok, n_failed = _store_batch(db, batch, ids, vectors, rows, job.model_version_id, spool)
        done += n_ok
        failed += n_failed
        count_progress(db, job_id, n_ok, n_failed)
        if progress:
            progress(n_ok, n_failed)
    if finish_if_complete(db, job_id):  # the task that completes a job merges the spool into the index
        sync_index(settings, model.version, model.embed_dim)
    return done, failed


def _embed_and_score(model: TagModel, batch: dict[str, Any], label_ids: list[int], label_emb: torch.Tensor,
                     params: JobParams) -> tuple[list[int], np.ndarray | None, list[list[tuple[int, float]]]]:
    """(image ids, global embeddings, best labels per image) of a batch's decoded images."""
    if not batch["ok"]:
        return [], None, []
    device = model.device
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    with torch.inference_mode(), amp:
        emb = model.encode_images(batch["pixels"].to(device, non_blocking=True), with_patches=model.local_top_k > 0)
        scores = model.score(emb, label_emb).float() if label_ids else None
    vectors = emb.global_.float().cpu().numpy()
    rows = _best_labels(scores.cpu(), label_ids, params.top_n, params.min_score) if scores is not None else []
    return [it["id"] for it in batch["ok"]], vectors, rows


def _best_labels(scores: torch.Tensor, label_ids: list[int], top_n: int,
                 min_score: float | None) -> list[list[tuple[int, float]]]:
    """Per image: at most ``top_n`` (label id, score), best first, above ``min_score`` if set."""
    k = min(top_n, scores.shape[1])
    values, idx = scores.topk(k, dim=1)
    out = []
    for vals, cols in zip(values.tolist(), idx.tolist()):
        out.append([(label_ids[c], v) for v, c in zip(vals, cols) if min_score is None or v >= min_score])
    return out


def _store_batch(db: Database, batch: dict[str, Any], ids: list[int], vectors: np.ndarray | None,
                 rows: list[list[tuple[int, float]]], mv_id: int, spool) -> tuple[int, int]:
    """One transaction per batch: statuses, replaced tags; embeddings spooled first."""
    now = utcnow()
    keep_ids, keep_vecs = [], []
    with db.session() as s:
        hashes = [it["hash"] for it in batch["ok"]]
        canonical = dict(s.execute(
            select(Image.content_hash, func.min(Image.id))
            .where(Image.content_hash.in_(hashes), Image.status == TAGGED, Image.model_version_id == mv_id,
                   Image.id.not_in(ids))
            .group_by(Image.content_hash)).all()) if hashes else {}
        tag_rows = []
        for n, it in enumerate(batch["ok"]):
            fields = {"content_hash": it["hash"], "width": it["width"], "height": it["height"],
                      "format": it["format"], "error": None, "model_version_id": mv_id, "tagged_at": now}
            original = canonical.get(it["hash"])
            if original is not None and original != it["id"]:
                fields.update(status=DUPLICATE, duplicate_of=original)
            else:
                canonical[it["hash"]] = it["id"]
                fields.update(status=TAGGED, duplicate_of=None)
                keep_ids.append(it["id"])
                keep_vecs.append(vectors[n])
                if rows:
                    tag_rows.extend({"image_id": it["id"], "label_id": lid, "model_version_id": mv_id,
                                     "score": float(sc)} for lid, sc in rows[n])
            s.execute(update(Image).where(Image.id == it["id"]).values(**fields))
        for it in batch["failed"]:
            s.execute(update(Image).where(Image.id == it["id"])
                      .values(status=FAILED, error=it["error"][:1000], model_version_id=mv_id, tagged_at=now))
        if ids:
            # Re-tagging replaces: tags of earlier model versions for these images go.
            s.execute(delete(Tag).where(Tag.image_id.in_(ids)))
        if tag_rows:
            s.execute(insert(Tag), tag_rows)
        if keep_ids:
            spool_embeddings(spool, np.asarray(keep_ids), np.stack(keep_vecs))
        # An image that was indexed before and now fails or turned out a duplicate leaves the index.
        dropped = [it["id"] for it in batch["failed"]] + sorted(set(ids) - set(keep_ids))
        if dropped:
            spool_removals(spool, np.asarray(dropped))
    return len(batch["ok"]), len(batch["failed"])
