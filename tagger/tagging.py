"""Tagging one batch of images for a job: the unit of work a Celery task runs (or the CLI runs
in-process).

Decode in DataLoader worker processes, embed and score in batches under
``torch.inference_mode`` (AMP on CUDA), store each image's best label scores and its embedding
in SQL in one transaction per batch; the vector index follows within seconds
(:mod:`indexer.sync`). The job row says which model version and result parameters to use; this
machine's settings say on which device, in which batch size, with how many decode workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session
from torch.utils.data import DataLoader, Dataset

from core.db import DUPLICATE, FAILED, TAGGED, Database, Image, Tag, get_database, utcnow
from core.images import ImageDecodeError, read_image
from core.settings import Settings
from indexer import store
from indexer.sync import maybe_sync
from mkt.tagmodel import ImageEmbeddings, TagModel
from tagger.jobs import JobParams, is_running, load_job, load_job_model
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
               progress: ProgressFn | None = None) -> tuple[int, int, bool]:
    """Tag ``image_ids`` for job ``job_id``: (done, failed, complete); not complete when the job
    stopped running meanwhile (cancelled), checked before each batch. Idempotent: safe to retry."""
    if not image_ids:
        return 0, 0, True
    db = get_database(settings.db_url)
    job = load_job(db, job_id)
    with db.session() as s:
        items = [(i, raw) for i, raw in s.execute(select(Image.id, Image.path_raw).where(Image.id.in_(image_ids))
                                                  .order_by(Image.id))]
    model = load_job_model(db, job, settings.resolved_device())
    label_ids, label_emb = label_embeddings(model, vocabulary(db), db, job.model_version_id)
    log.info("job %d: %d images on %s (batch %d, %d decode workers)", job_id, len(items), model.device,
             settings.batch_size, settings.loader_workers)
    loader = DataLoader(_ImageFiles(items, model.preprocess, job.params.max_pixels), batch_size=settings.batch_size,
                        num_workers=settings.loader_workers, collate_fn=_collate,
                        pin_memory=model.device.type == "cuda", persistent_workers=False)
    done = failed = 0
    for batch in loader:
        if not is_running(db, job_id):
            log.info("job %d is no longer running: stopping after %d images", job_id, done + failed)
            return done, failed, False
        encoded = _embed_and_score(model, batch, label_ids, label_emb, job.params)
        n_ok, n_failed = _store_batch(db, batch, encoded, job.model_version_id, job_id)
        done += n_ok
        failed += n_failed
        if progress:
            progress(n_ok, n_failed)
        maybe_sync(settings, model.version, model.embed_dim)  # searchable while the job runs
    return done, failed, True


@dataclass
class Encoded:
    """A batch's decoded images, embedded and scored: ids, global embeddings [B, D] and (models
    with a local stream) patch features [B, P, D], both as stored (float16 values), and the best
    labels per image."""

    ids: list[int] = field(default_factory=list)
    vectors: np.ndarray | None = None
    patches: np.ndarray | None = None
    best: list[list[tuple[int, float]]] = field(default_factory=list)


def as_stored(emb: ImageEmbeddings) -> ImageEmbeddings:
    """The embeddings rounded to float16 as the store keeps them: tags scored from them are the
    tags that scoring the stored embeddings later (new labels) gives."""
    patches = emb.patches.half().float() if emb.patches is not None else None
    return ImageEmbeddings(emb.global_.half().float(), patches)


def _embed_and_score(model: TagModel, batch: dict[str, Any], label_ids: list[int], label_emb: torch.Tensor,
                     params: JobParams) -> Encoded:
    if not batch["ok"]:
        return Encoded()
    device = model.device
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    with torch.inference_mode(), amp:
        emb = model.encode_images(batch["pixels"].to(device, non_blocking=True), with_patches=model.local_top_k > 0)
    with torch.inference_mode():
        emb = as_stored(emb)
        scores = model.score(emb, label_emb).float().cpu() if label_ids else None
    best = _best_labels(scores, label_ids, params.top_n, params.min_score) if scores is not None else []
    patches = emb.patches.cpu().numpy() if emb.patches is not None and model.local_top_k > 0 else None
    return Encoded([it["id"] for it in batch["ok"]], emb.global_.cpu().numpy(), patches, best)


def _best_labels(scores: torch.Tensor, label_ids: list[int], top_n: int,
                 min_score: float | None) -> list[list[tuple[int, float]]]:
    """Per image: at most ``top_n`` (label id, score), best first, above ``min_score`` if set."""
    k = min(top_n, scores.shape[1])
    values, idx = scores.topk(k, dim=1)
    out = []
    for vals, cols in zip(values.tolist(), idx.tolist()):
        out.append([(label_ids[c], v) for v, c in zip(vals, cols) if min_score is None or v >= min_score])
    return out


def _store_batch(db: Database, batch: dict[str, Any], enc: Encoded, mv_id: int, job_id: int) -> tuple[int, int]:
    """One transaction per batch: statuses (with the job that stored them: its progress), replaced
    tags and embeddings (with the index's change rows), so a kill at any moment leaves them
    consistent."""
    now = utcnow()
    keep: list[int] = []  # positions in the batch of images that are tagged (not duplicates)
    with db.session() as s:
        canonical = _originals(s, [it["hash"] for it in batch["ok"]], enc.ids, mv_id)
        tag_rows = []
        for n, it in enumerate(batch["ok"]):
            fields = {"content_hash": it["hash"], "width": it["width"], "height": it["height"],
                      "format": it["format"], "error": None, "model_version_id": mv_id, "tagged_at": now,
                      "job_id": job_id}
            original = canonical.get(it["hash"])
            if original is not None and original != it["id"]:
                fields.update(status=DUPLICATE, duplicate_of=original)
            else:
                canonical[it["hash"]] = it["id"]
                fields.update(status=TAGGED, duplicate_of=None)
                keep.append(n)
                if enc.best:
                    tag_rows.extend({"image_id": it["id"], "label_id": lid, "model_version_id": mv_id,
                                     "score": float(sc)} for lid, sc in enc.best[n])
            s.execute(update(Image).where(Image.id == it["id"]).values(**fields))
        for it in batch["failed"]:
            s.execute(update(Image).where(Image.id == it["id"])
                      .values(status=FAILED, error=it["error"][:1000], model_version_id=mv_id, tagged_at=now,
                              job_id=job_id))
        if enc.ids:
            # Re-tagging replaces this version's tags; other versions' stay until they are removed
            # (`tagscope models remove`): the active version serves while a new one is built.
            s.execute(delete(Tag).where(Tag.image_id.in_(enc.ids), Tag.model_version_id == mv_id))
        if tag_rows:
            s.execute(insert(Tag), tag_rows)
        # Failed images and duplicates keep no embedding (and leave every index); tagged ones keep this one.
        kept_ids = [enc.ids[n] for n in keep]
        store.drop(s, [it["id"] for it in batch["failed"]] + sorted(set(enc.ids) - set(kept_ids)))
        if keep:
            store.put(s, mv_id, kept_ids, enc.vectors[keep], None if enc.patches is None else enc.patches[keep])
    return len(batch["ok"]), len(batch["failed"])


def _originals(s: Session, hashes: list[str], ids: list[int], mv_id: int) -> dict[str, int]:
    """content hash -> the id of an image already tagged with those bytes (this batch's aside)."""
    if not hashes:
        return {}
    return dict(s.execute(select(Image.content_hash, func.min(Image.id))
                          .where(Image.content_hash.in_(hashes), Image.status == TAGGED,
                                 Image.model_version_id == mv_id, Image.id.not_in(ids))
                          .group_by(Image.content_hash)).all())
