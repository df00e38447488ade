"""Many labels' score distributions over a collection, from what is stored: the numbers a
collection rule is derived from (:mod:`tagger.decisions`), the same ones search derives a query's
cutoff from (:mod:`indexer.search.relevance`, :class:`mkt.calibration.Stats`).

- ``median``: the label's median score over a uniform sample of the version's stored embeddings
  (patch features too for two-stream models), drawn with a fixed seed: the same collection gives
  the same sample, so the same rules;
- ``top``: the mean of the label's ``TOP_N`` best scores: its best stored tags (each photo keeps
  its ``top_n`` best labels) and its best scores in the sample, whichever are higher;
- ``margin`` and ``best``: of its ``GUARD_N`` best photos, the mean margin of their score over
  their best score on a generic caption ("a photo of a thing.") and their mean score.

All labels are scored in one pass over the sample, against one ``[L, D]`` label matrix, in chunks
of photos sized so that the local stream's ``[photos, patches, labels]`` scores stay bounded.
"""

from __future__ import annotations

import numpy as np
import torch
from sqlalchemy import func, select

from core.db import Database
from core.schema import TAGGED, Embedding, Image, Tag
from indexer import store
from indexer.search.relevance import SAMPLE, SAMPLE_BYTES
from mkt.calibration import BACKGROUND_TEXTS, GUARD_N, TOP_N, Stats
from mkt.tagmodel import ImageEmbeddings, TagModel

SEED = 0  # the sample's: the same collection, the same sample
SCORES_BUDGET = 1 << 25  # float32 scores (photos x patches x labels) computed at once: 128 MiB


def _patches(model: TagModel) -> int:
    """Patch features a photo's local stream scores (0 without one)."""
    return int(np.prod(getattr(model.clip.visual, "grid_size", (14, 14)))) + 1 if model.local_top_k > 0 else 0


def sample_size(model: TagModel) -> int:
    """Photos in the sample: :data:`indexer.search.relevance.SAMPLE`, fewer for models whose patch
    features are large (the same bound search uses)."""
    return max(64, min(SAMPLE, SAMPLE_BYTES // (4 * model.embed_dim * (1 + _patches(model)))))


def sample_ids(db: Database, model_version_id: int, n: int) -> np.ndarray:
    """Ids (ascending) of a uniform sample of ``n`` tagged images with a stored embedding of the
    version, all of them when fewer; drawn with :data:`SEED`, so the same for the same collection."""
    with db.session() as s:
        total = int(s.scalar(select(func.count()).select_from(Embedding).join(Image, Image.id == Embedding.image_id)
                             .where(Embedding.model_version_id == model_version_id, Image.status == TAGGED)) or 0)
        if total > store.SAMPLE_SORT_MAX:
            return np.sort(store.sample_ids(db, model_version_id, n, seed=SEED))
        ids = np.asarray(s.scalars(select(Embedding.image_id).join(Image, Image.id == Embedding.image_id)
                                   .where(Embedding.model_version_id == model_version_id, Image.status == TAGGED)
                                   .order_by(Embedding.image_id)).all(), np.int64)
    if len(ids) > n:
        ids = np.sort(np.random.default_rng(SEED).choice(ids, n, replace=False))
    return ids


def _chunks(model: TagModel, ids: np.ndarray, labels: int):
    size = max(1, min(1024, SCORES_BUDGET // max(1, max(1, _patches(model)) * labels)))
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _score(db: Database, model: TagModel, model_version_id: int, ids: np.ndarray, label_emb: torch.Tensor,
           background: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids found, their scores ``[n, L]``, their best score on a background text ``[n]``), in chunks."""
    found_all, scores, best_bg = [], [], []
    local = model.local_top_k > 0
    for chunk in _chunks(model, ids, label_emb.shape[0]):
        found, vectors, patches = store.get_with_patches(db, model_version_id, chunk.tolist(), model.embed_dim,
                                                         patches=local)
        if not len(found):
            continue
        emb = ImageEmbeddings(torch.from_numpy(vectors).to(model.device),
                              None if patches is None else torch.from_numpy(patches).to(model.device))
        with torch.inference_mode():
            scores.append(model.score(emb, label_emb).float().cpu().numpy())
            best_bg.append(model.score(emb, background).float().max(dim=1).values.cpu().numpy())
        found_all.append(found)
    if not found_all:
        return np.zeros(0, np.int64), np.zeros((0, label_emb.shape[0]), np.float32), np.zeros(0, np.float32)
    return np.concatenate(found_all), np.concatenate(scores), np.concatenate(best_bg)


def best_stored(db: Database, model_version_id: int, label_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
    """label id -> its ``TOP_N`` best stored tags of tagged images under the version, as (image id,
    score), best first (one indexed query per label: ``tags`` by label, version and score)."""
    out: dict[int, list[tuple[int, float]]] = {}
    with db.session() as s:
        for label_id in label_ids:
            rows = s.execute(select(Tag.image_id, Tag.score).join(Image, Image.id == Tag.image_id)
                             .where(Tag.label_id == label_id, Tag.model_version_id == model_version_id,
                                    Image.status == TAGGED)
                             .order_by(Tag.score.desc(), Tag.image_id).limit(TOP_N)).all()
            out[label_id] = [(int(i), float(score)) for i, score in rows]
    return out


def collection_stats(db: Database, model: TagModel, model_version_id: int, label_ids: list[int],
                     label_emb: torch.Tensor) -> tuple[dict[int, Stats], int]:
    """Each label's :class:`mkt.calibration.Stats` over the version's stored embeddings
    (``label_emb``: their embeddings, ``[L, D]``, in ``label_ids``' order) and how many photos the
    sample held; labels of an empty collection are left out."""
    with torch.inference_mode():
        background = model.encode_labels(list(BACKGROUND_TEXTS)).float().to(model.device)
    label_emb = label_emb.float().to(model.device)
    ids, scores, bg = _score(db, model, model_version_id, sample_ids(db, model_version_id, sample_size(model)),
                             label_emb, background)
    if not len(ids):
        return {}, 0
    medians = np.median(scores.astype(np.float64), axis=0)
    in_sample = min(TOP_N, len(ids))
    sample_best = np.argsort(-scores, axis=0, kind="stable")[:in_sample]  # [TOP_N, L] rows of the sample
    stored = best_stored(db, model_version_id, label_ids)
    tops: dict[int, list[tuple[int, float]]] = {}
    for j, label_id in enumerate(label_ids):
        found = dict(stored[label_id])  # a stored score wins over the same photo's sample score
        for row in sample_best[:, j]:
            found.setdefault(int(ids[row]), float(scores[row, j]))
        tops[label_id] = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:TOP_N]
    background_of = dict(zip(ids.tolist(), bg.tolist()))
    missing = np.asarray(sorted({i for best in tops.values() for i, _ in best[:GUARD_N]} - set(background_of)),
                         np.int64)
    if len(missing):
        more, _, more_bg = _score(db, model, model_version_id, missing, label_emb[:1], background)
        background_of.update(zip(more.tolist(), more_bg.tolist()))
    out = {}
    for j, label_id in enumerate(label_ids):
        best = tops[label_id]
        few = [(i, score) for i, score in best[:GUARD_N] if i in background_of]
        margin = float(np.mean([score - background_of[i] for i, score in few])) if few else float("nan")
        out[label_id] = Stats(float(medians[j]), float(np.mean([score for _, score in best])), margin,
                              float(np.mean([score for _, score in best[:GUARD_N]])))
    return out, len(ids)
