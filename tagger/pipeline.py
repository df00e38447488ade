"""Tagging pipeline: register files, then tag batches of image ids.

``scan`` walks folders and registers files in SQL; ``tag_images`` is the unit of work a Celery
task runs (or the CLI runs in-process): decode in DataLoader worker processes, embed and score
in batches under ``torch.inference_mode`` (AMP on CUDA), store each image's best label scores
in SQL and spool its embedding for the vector index.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import delete, func, insert, select, update
from torch.utils.data import DataLoader, Dataset

from indexer.vector_index import merge_spool, spool_dir, spool_embeddings, spool_removals
from mkt.factory import create_tag_model
from mkt.tagmodel import TagModel
from tagger.config import Settings
from tagger.db import (
    DUPLICATE,
    FAILED,
    MISSING,
    PENDING,
    TAGGED,
    Database,
    Image,
    Job,
    Label,
    Tag,
    get_database,
    get_or_create_model_version,
    path_key,
    utcnow,
)
from tagger.imageio import IMAGE_EXTENSIONS, FoundFile, ImageDecodeError, display_path, read_image, walk_files

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (newly done, newly failed)


# -- registration ----------------------------------------------------------------------------

@dataclass
class ScanResult:
    image_ids: list[int] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0  # files without an image extension (documents, videos, sidecars...)
    missing: list[int] = field(default_factory=list)  # registered under a root, no longer there


def scan(db: Database, roots: Iterable[str | os.PathLike], chunk: int = 1000) -> ScanResult:
    """Register every image file under ``roots``; one whose size or mtime changed is tagged again.

    Image files are recognised by extension (as photo managers do); a file with an image
    extension that does not decode is registered and later recorded as failed with a reason.
    """
    result = ScanResult()
    batch: list[FoundFile] = []
    for found in walk_files(roots):
        if os.path.splitext(found.path)[1].lower() not in IMAGE_EXTENSIONS:
            result.skipped += 1
            continue
        batch.append(found)
        if len(batch) >= chunk:
            _register(db, batch, result)
            batch = []
    if batch:
        _register(db, batch, result)
    _mark_missing(db, roots, result)
    return result


def _mark_missing(db: Database, roots: Iterable[str | os.PathLike], result: ScanResult, chunk: int = 5000) -> None:
    """Images registered under a scanned folder that the walk no longer found become MISSING."""
    found = set(result.image_ids)
    for root in roots:
        if not os.path.isdir(root):
            continue
        prefix = display_path(os.path.join(os.path.abspath(os.fsdecode(root)), ""))
        with db.session() as s:
            ids = s.scalars(select(Image.id).where(Image.path.startswith(prefix, autoescape=True),
                                                   Image.status != MISSING)).all()
            gone = [i for i in ids if i not in found]
            for start in range(0, len(gone), chunk):
                s.execute(update(Image).where(Image.id.in_(gone[start:start + chunk]))
                          .values(status=MISSING, error="file no longer found"))
        result.missing.extend(gone)


def _register(db: Database, files: Sequence[FoundFile], result: ScanResult) -> None:
    raws = {f.path: os.fsencode(f.path) for f in files}
    keys = {f.path: path_key(raws[f.path]) for f in files}
    with db.session() as s:
        existing = {img.path_key: img for img in
                    s.scalars(select(Image).where(Image.path_key.in_(list(keys.values()))))}
        for f in files:
            img = existing.get(keys[f.path])
            if img is None:
                img = Image(path=display_path(f.path), path_raw=raws[f.path], path_key=keys[f.path],
                            size_bytes=f.size, mtime=f.mtime, status=PENDING)
                s.add(img)
                existing[img.path_key] = img
                result.new += 1
            elif img.size_bytes != f.size or img.mtime != f.mtime or img.status == MISSING:
                img.size_bytes, img.mtime = f.size, f.mtime
                img.status, img.content_hash, img.error, img.duplicate_of = PENDING, None, None, None
                result.changed += 1
            else:
                result.unchanged += 1
        s.flush()
        result.image_ids.extend(existing[keys[f.path]].id for f in files)


def images_to_tag(db: Database, image_ids: Sequence[int], model_version_id: int,
                  retry_failed: bool = False, retag: bool = False, chunk: int = 5000) -> list[int]:
    """The ids among ``image_ids`` that need work for this model version (resume = skip the rest)."""
    todo: list[int] = []
    for start in range(0, len(image_ids), chunk):
        ids = list(image_ids[start:start + chunk])
        with db.session() as s:
            rows = s.execute(select(Image.id, Image.status, Image.model_version_id)
                             .where(Image.id.in_(ids))).all()
        for image_id, status, mv in rows:
            if status == PENDING or (status == TAGGED and (retag or mv != model_version_id)) or \
                    (status == FAILED and retry_failed):
                todo.append(image_id)
    return sorted(todo)


# -- the model, once per process ---------------------------------------------------------------

_models: dict[tuple[str, str], TagModel] = {}


def get_model(spec: str, device: str) -> TagModel:
    """Load a tag model once per process (Celery workers keep it between tasks)."""
    key = (spec, device)
    if key not in _models:
        _models[key] = create_tag_model(spec, device=device)
    return _models[key]


_label_cache: dict[tuple[str, str], tuple[list[int], torch.Tensor]] = {}


def label_embeddings(model: TagModel, labels: Sequence[tuple[int, str]]) -> tuple[list[int], torch.Tensor]:
    """Embeddings of the vocabulary, cached per model version and label set."""
    digest = hashlib.sha256("\n".join(f"{i}\t{n}" for i, n in labels).encode()).hexdigest()
    key = (model.version, digest)
    if key not in _label_cache:
        with torch.inference_mode():
            emb = model.encode_labels([name for _, name in labels])
        _label_cache.clear()  # one vocabulary at a time is what a worker needs
        _label_cache[key] = ([i for i, _ in labels], emb)
    return _label_cache[key]


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

@dataclass
class TagParams:
    model: str
    top_n: int
    min_score: float | None
    batch_size: int
    loader_workers: int
    max_pixels: int
    device: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TagParams:
        return cls(model=settings.model, top_n=settings.top_n, min_score=settings.min_score,
                   batch_size=settings.batch_size, loader_workers=settings.loader_workers,
                   max_pixels=settings.max_pixels, device=settings.resolved_device())

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def tag_images(settings: Settings, job_id: int, image_ids: Sequence[int],
               progress: ProgressFn | None = None) -> tuple[int, int]:
    """Tag ``image_ids`` for job ``job_id``; returns (done, failed). Idempotent: safe to retry."""
    db = get_database(settings.db_url)
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} does not exist")
        params = TagParams(**job.params["tag"])
        mv_id = job.model_version_id
        items = [(i, raw) for i, raw in s.execute(select(Image.id, Image.path_raw).where(Image.id.in_(image_ids))
                                                  .order_by(Image.id))]
        vocab = [(i, n) for i, n in s.execute(select(Label.id, Label.name).order_by(Label.id))]
    model = get_model(params.model, params.device)
    label_ids, label_emb = label_embeddings(model, vocab)
    device = model.device
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    loader = DataLoader(_ImageFiles(items, model.preprocess, params.max_pixels), batch_size=params.batch_size,
                        num_workers=params.loader_workers, collate_fn=_collate,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    spool = spool_dir(settings.home, model.version)
    done = failed = 0
    for batch in loader:
        ids, vectors, rows = [], None, []
        if batch["ok"]:
            with torch.inference_mode(), amp:
                emb = model.encode_images(batch["pixels"].to(device, non_blocking=True),
                                          with_patches=model.local_top_k > 0)
                scores = model.score(emb, label_emb).float() if label_ids else None
            vectors = emb.global_.float().cpu().numpy()
            ids = [it["id"] for it in batch["ok"]]
            if scores is not None:
                rows = _best_labels(scores.cpu(), label_ids, params.top_n, params.min_score)
        n_ok, n_failed = _store_batch(db, batch, ids, vectors, rows, mv_id, spool)
        done += n_ok
        failed += n_failed
        _count(db, job_id, n_ok, n_failed)
        if progress:
            progress(n_ok, n_failed)
    _finish_if_complete(settings, job_id, model)
    return done, failed


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


def _count(db: Database, job_id: int, n_ok: int, n_failed: int) -> None:
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id)
                  .values(done=Job.done + n_ok, failed=Job.failed + n_failed))


def _finish_if_complete(settings: Settings, job_id: int, model: TagModel) -> None:
    """The task that completes a job marks it done and merges the spool into the index."""
    db = get_database(settings.db_url)
    with db.session() as s:
        finished = s.execute(update(Job).where(Job.id == job_id, Job.state == "running",
                                               Job.done + Job.failed >= Job.total)
                             .values(state="done", finished_at=utcnow())).rowcount
    if finished:
        sync_index(settings, model.version, model.embed_dim)


def sync_index(settings: Settings, version: str, dim: int) -> int:
    """Merge spooled embeddings into the index of ``version`` (blocking on its lock)."""
    return merge_spool(settings.index_dir, spool_dir(settings.home, version), version, dim) or 0


# -- jobs ----------------------------------------------------------------------------------------

def create_tag_job(settings: Settings, model: TagModel, image_ids: Sequence[int], kind: str = "tag",
                   extra: dict[str, Any] | None = None) -> int:
    db = get_database(settings.db_url)
    params = TagParams.from_settings(settings)
    with db.session() as s:
        mv = get_or_create_model_version(s, model.version, model.spec, model.embed_dim)
        job = Job(kind=kind, state="running" if image_ids else "done", model_version_id=mv.id,
                  total=len(image_ids), params={"tag": params.to_json(), **(extra or {})},
                  started_at=utcnow(), finished_at=None if image_ids else utcnow())
        s.add(job)
        s.flush()
        return job.id


def ensure_model_version(settings: Settings, model: TagModel) -> int:
    db = get_database(settings.db_url)
    with db.session() as s:
        return get_or_create_model_version(s, model.version, model.spec, model.embed_dim).id


def default_label_names() -> list[str]:
    """The vocabulary for real photos shipped with the package (tagger/data/default_labels.txt)."""
    from importlib import resources

    from mkt.data import read_label_list

    return read_label_list(Path(str(resources.files("tagger") / "data" / "default_labels.txt")))


def vocabulary_size(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Label)) or 0)


def seed_labels(db: Database, names: Iterable[str], source: str) -> int:
    """Add labels not yet in the vocabulary; returns how many were new."""
    clean = []
    seen = set()
    for name in names:
        name = " ".join(name.split())
        if name and name.lower() not in seen:
            seen.add(name.lower())
            clean.append(name)
    if not clean:
        return 0
    added = 0
    with db.session() as s:
        existing = {n.lower() for n in s.scalars(select(Label.name))}
        for name in clean:
            if name.lower() not in existing:
                if len(name) > 200:
                    raise ValueError(f"label too long ({len(name)} characters, at most 200): {name[:40]}...")
                s.add(Label(name=name, source=source))
                added += 1
    return added
