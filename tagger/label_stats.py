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
from sqlalchemy import func, select, text

from core.db import Database
from core.schema import TAGGED, Embedding, Image, Tag
from core.sql_in import chunks
from indexer import store
from indexer.search.relevance import SAMPLE, SAMPLE_BYTES
from mkt.calibration import BACKGROUND_TEXTS, GUARD_N, TOP_N, Stats
from mkt.tagmodel import ImageEmbeddings, TagModel

SEED = 0  # the sample's: the same collection, the same sample
SCORES_BUDGET = 1 << 24  # float64 scores (photos x patches x labels) computed at once: 128 MiB


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


def _load(db: Database, model: TagModel, model_version_id: int, ids: np.ndarray
          ) -> tuple[np.ndarray, ImageEmbeddings | None]:
    """(ids found, their stored embeddings in float64 on the model's device)."""
    found, vectors, patches = store.get_with_patches(db, model_version_id, ids.tolist(), model.embed_dim,
                                                     patches=model.local_top_k > 0)
    if not len(found):
        return found, None
    device = model.device
    return found, ImageEmbeddings(torch.from_numpy(vectors).to(device, torch.float64),
                                  None if patches is None else torch.from_numpy(patches).to(device, torch.float64))


def _score(db: Database, model: TagModel, model_version_id: int, ids: np.ndarray, label_emb: torch.Tensor,
           background: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids found, their scores ``[n, L]``, their best score on a background text ``[n]``), in chunks.
    In float64: a label's scores do not depend on which labels are scored with it (a float32 product's
    last bits do), so its rule is the same whenever it is computed."""
    found_all, scores, best_bg = [np.zeros(0, np.int64)], [np.zeros((0, label_emb.shape[0]))], [np.zeros(0)]
    for chunk in _chunks(model, ids, label_emb.shape[0]):
        found, emb = _load(db, model, model_version_id, chunk)
        if emb is None:
            continue
        with torch.inference_mode():
            scores.append(model.score(emb, label_emb).cpu().numpy())
            best_bg.append(model.score(emb, background).max(dim=1).values.cpu().numpy())
        found_all.append(found)
    return np.concatenate(found_all), np.concatenate(scores), np.concatenate(best_bg)


def _score_pairs(db: Database, model: TagModel, model_version_id: int, wanted: dict[int, list[int]],
                 label_emb: torch.Tensor, background: torch.Tensor) -> tuple[dict[tuple[int, int], float],
                                                                             dict[int, float]]:
    """Scores of the (image, label column) pairs in ``wanted`` (image id -> columns), and those
    images' best score on a background text: the best photos of labels outside the sample."""
    scores: dict[tuple[int, int], float] = {}
    background_of: dict[int, float] = {}
    ids = np.asarray(sorted(wanted), np.int64)
    for start in range(0, len(ids), 256):
        found, emb = _load(db, model, model_version_id, ids[start:start + 256])
        if emb is None:
            continue
        with torch.inference_mode():
            background_of.update(zip(found.tolist(), model.score(emb, background).max(dim=1).values.cpu().tolist()))
            for row, image_id in enumerate(found.tolist()):
                patches = None if emb.patches is None else emb.patches[row:row + 1]
                one = ImageEmbeddings(emb.global_[row:row + 1], patches)
                columns = wanted[image_id]
                got = model.score(one, label_emb[columns])[0].cpu().tolist()
                scores.update({(image_id, j): s for j, s in zip(columns, got)})
    return scores, background_of


# PostgreSQL: every label's best tags in one statement per chunk of labels (an index scan each).
BEST_STORED_PG = text(
    "SELECT l.id, t.image_id FROM unnest(CAST(:ids AS integer[])) AS l(id) CROSS JOIN LATERAL ("
    " SELECT tags.image_id, tags.score FROM tags JOIN images ON images.id = tags.image_id"
    " WHERE tags.label_id = l.id AND tags.model_version_id = :version AND images.status = :tagged"
    " ORDER BY tags.score DESC, tags.image_id LIMIT :n) AS t ORDER BY l.id, t.score DESC, t.image_id")


def best_stored(db: Database, model_version_id: int, label_ids: list[int]) -> dict[int, list[int]]:
    """label id -> the images of its ``TOP_N`` best stored tags (of tagged images, under the version),
    best first: an indexed scan of ``tags`` by label, version and score per label."""
    out: dict[int, list[int]] = {label_id: [] for label_id in label_ids}
    with db.session() as s:
        if not db.is_sqlite:
            for chunk in chunks(label_ids, 1000):
                for label_id, image_id in s.execute(BEST_STORED_PG, {"ids": list(chunk), "version": model_version_id,
                                                                     "tagged": TAGGED, "n": TOP_N}):
                    out[label_id].append(int(image_id))
            return out
        for label_id in label_ids:  # SQLite answers in-process: a query per label costs microseconds
            out[label_id] = [int(i) for i in s.scalars(
                select(Tag.image_id).join(Image, Image.id == Tag.image_id)
                .where(Tag.label_id == label_id, Tag.model_version_id == model_version_id, Image.status == TAGGED)
                .order_by(Tag.score.desc(), Tag.image_id).limit(TOP_N))]
    return out


def collection_stats(db: Database, model: TagModel, model_version_id: int, label_ids: list[int],
                     label_emb: torch.Tensor) -> tuple[dict[int, Stats], int]:
    """Each label's :class:`mkt.calibration.Stats` over the version's stored embeddings
    (``label_emb``: their embeddings, ``[L, D]``, in ``label_ids``' order) and how many photos the
    sample held; labels of an empty collection are left out."""
    with torch.inference_mode():
        background = model.encode_labels(list(BACKGROUND_TEXTS)).to(model.device, torch.float64)
    label_emb = label_emb.to(model.device, torch.float64)
    ids, scores, bg = _score(db, model, model_version_id, sample_ids(db, model_version_id, sample_size(model)),
                             label_emb, background)
    if not len(ids):
        return {}, 0
    medians = np.median(scores, axis=0)
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    stored = best_stored(db, model_version_id, label_ids)
    outside: dict[int, list[int]] = {}
    for j, label_id in enumerate(label_ids):
        for image_id in stored[label_id]:
            if image_id not in row_of:
                outside.setdefault(image_id, []).append(j)
    pairs, background_of = _score_pairs(db, model, model_version_id, outside, label_emb, background)
    background_of.update(zip(ids.tolist(), bg.tolist()))
    sample_best = np.argsort(-scores, axis=0, kind="stable")[:TOP_N]  # [<= TOP_N, L] rows of the sample
    out = {}
    for j, label_id in enumerate(label_ids):
        found = {int(ids[r]): float(scores[r, j]) for r in sample_best[:, j]}
        for image_id in stored[label_id]:
            score = scores[row_of[image_id], j] if image_id in row_of else pairs.get((image_id, j))
            if score is not None:
                found[image_id] = float(score)
        out[label_id] = _stats(float(medians[j]), sorted(found.items(), key=lambda it: (-it[1], it[0]))[:TOP_N],
                               background_of)
    return out, len(ids)


def _stats(median: float, best: list[tuple[int, float]], background_of: dict[int, float]) -> Stats:
    """:class:`Stats` from the median and the label's best photos (id, score), best first."""
    few = best[:GUARD_N]
    return Stats(median, float(np.mean([s for _, s in best])),
                 float(np.mean([s - background_of[i] for i, s in few])), float(np.mean([s for _, s in few])))
