"""New labels without re-reading photos: score the vocabulary's changes from stored embeddings.

``tagscope labels add`` scores the new labels for every tagged image from the embedding store
(:mod:`indexer.store`), with no photo read: the photo folders may be offline. An image keeps
the best ``top_n`` labels (above ``min_score``, if set): the new top-n is the top-n of its
stored tags and the new labels' scores, which is exactly what a full re-tag stores with the
same ``top_n`` (a label that was not among an image's top-n cannot enter it when labels are
added), because tagging scores the same float16 embeddings the store keeps
(:func:`tagger.tagging.as_stored`). ``tagscope labels remove`` deletes labels and their tags, and
re-scores only the images that lose a tag against the remaining vocabulary, so the next-best
label takes the freed place as a re-tag would. Models with a local stream (MKT bundles) score
from their stored patch features.

Vocabulary changes switch atomically for readers (the image page, ``tagscope show``, the API):
new labels are added ``pending`` and their tags are written BESIDE the tags readers see, which
stay whole; one transaction then makes the labels active and trims each touched image to its
best ``top_n``. An interrupted ``labels add`` leaves them pending and hidden; the next one
finishes them. Removed labels are hidden at once (``removing``) before their tags go.

New labels are decided the way a full re-tag decides them: their rules (:mod:`tagger.decisions`)
are computed with the same function once their tags are written, before they switch to active;
the labels whose tags the switch trims (or that a removal re-scores) get theirs again after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy import delete, func, insert, select, tuple_, update

from core.db import Database
from core.schema import Embedding, Label, ModelVersion, Tag
from core.settings import Settings
from core.sql_in import chunks
from indexer import store
from migrations import get_database
from mkt.tagmodel import ImageEmbeddings, TagModel
from tagger.decisions import calibrate_version, model_of
from tagger.vocabulary import ACTIVE, PENDING, REMOVING, embed_labels, label_embeddings, vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """Which labels an image keeps: the best ``top_n``, those scoring at least ``min_score``."""

    top_n: int
    min_score: float | None

    def keep(self, scored: dict[int, float]) -> list[tuple[int, float]]:
        best = sorted(scored.items(), key=lambda item: -item[1])[:self.top_n]
        return [(label, score) for label, score in best if self.min_score is None or score >= self.min_score]


def _tagged_versions(db: Database) -> list[ModelVersion]:
    """Every version with stored embeddings: the active one, one being built, one kept to switch back to."""
    with db.session() as s:
        return list(s.scalars(select(ModelVersion).where(
            select(Embedding.image_id).where(Embedding.model_version_id == ModelVersion.id).exists())
            .order_by(ModelVersion.id)))


def _model_of(mv: ModelVersion, settings: Settings) -> TagModel:
    return model_of(mv, settings.resolved_device())


def _embeddings(model: TagModel, vectors: np.ndarray, patches: list[bytes | None]) -> ImageEmbeddings:
    global_ = torch.from_numpy(vectors).to(model.device)
    if model.local_top_k <= 0 or any(p is None for p in patches):
        return ImageEmbeddings(global_)
    local = store.from_bytes(patches, vectors.shape[1]).reshape(len(patches), -1, vectors.shape[1])
    return ImageEmbeddings(global_, torch.from_numpy(local).to(model.device))


def _stored_tags(db: Database, mv_id: int, ids: Sequence[int]) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {int(i): {} for i in ids}
    with db.session() as s:
        for chunk in chunks(list(ids)):
            for image_id, label_id, score in s.execute(select(Tag.image_id, Tag.label_id, Tag.score)
                                                       .where(Tag.model_version_id == mv_id,
                                                              Tag.image_id.in_(chunk))):
                out[image_id][label_id] = score
    return out


def _write(db: Database, mv_id: int, kept: dict[int, list[tuple[int, float]]]) -> None:
    with db.session() as s:
        for chunk in chunks(list(kept)):
            s.execute(delete(Tag).where(Tag.model_version_id == mv_id, Tag.image_id.in_(chunk)))
        rows = [{"image_id": i, "label_id": label, "model_version_id": mv_id, "score": float(score)}
                for i, labels in kept.items() for label, score in labels]
        if rows:
            s.execute(insert(Tag), rows)


def _add_beside(db: Database, mv_id: int, label_ids: list[int], kept: dict[int, list[tuple[int, float]]]) -> None:
    """Write the new labels' entries of each image's new best beside its visible tags (the
    displaced ones go when the labels switch to active, :func:`_activate`)."""
    new = set(label_ids)
    with db.session() as s:
        for chunk in chunks(list(kept)):
            s.execute(delete(Tag).where(Tag.model_version_id == mv_id, Tag.image_id.in_(chunk),
                                        Tag.label_id.in_(label_ids)))  # a resumed run writes them again
        rows = [{"image_id": i, "label_id": label, "model_version_id": mv_id, "score": float(score)}
                for i, labels in kept.items() for label, score in labels if label in new]
        if rows:
            s.execute(insert(Tag), rows)


def _activate(db: Database, label_ids: list[int], versions: list[ModelVersion], top_n: int) -> dict[int, set[int]]:
    """One transaction: the pending labels become active, and every image holding one of their
    tags keeps its best ``top_n`` (by score), which is the top-n :func:`_rescore` computed.
    Returns, per version id, the labels that lost tags to them (their rules follow their tags)."""
    trimmed: dict[int, set[int]] = {}
    with db.session() as s:
        s.execute(update(Label).where(Label.id.in_(label_ids)).values(state=ACTIVE))
        for mv in versions:
            touched = select(Tag.image_id).where(Tag.model_version_id == mv.id, Tag.label_id.in_(label_ids))
            rank = func.row_number().over(partition_by=Tag.image_id, order_by=(Tag.score.desc(), Tag.label_id))
            ranked = (select(Tag.image_id, Tag.label_id, rank.label("rank"))
                      .where(Tag.model_version_id == mv.id, Tag.image_id.in_(touched)).subquery())
            doomed = select(ranked.c.image_id, ranked.c.label_id).where(ranked.c.rank > top_n)
            trimmed[mv.id] = set(s.scalars(select(doomed.subquery().c.label_id).distinct()))
            s.execute(delete(Tag).where(Tag.model_version_id == mv.id,
                                        tuple_(Tag.image_id, Tag.label_id).in_(doomed)))
    return trimmed


def _top_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` best columns (all of them when there are no more): of many labels scored,
    only these can enter an image's best ``k`` (no sort of thousands of labels per image)."""
    if scores.shape[1] <= k:
        return np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def _rescore(db: Database, mv: ModelVersion, model: TagModel, label_ids: list[int], label_emb: torch.Tensor,
             rule: Rule, only: set[int] | None = None, merge_stored: bool = True, beside: bool = False) -> int:
    """Score ``label_ids`` for the tagged images of ``mv`` (or those in ``only``) from the store and
    keep the best per ``rule``, merged with their stored tags when ``merge_stored``; ``beside``:
    write only the new labels' entries next to the visible tags (:func:`_add_beside`)."""
    n = 0
    for ids, vectors, patches in store.scan(db, mv.id, mv.embed_dim, with_patches=model.local_top_k > 0):
        if only is not None:
            pick = np.isin(ids, list(only))
            ids, vectors, patches = ids[pick], vectors[pick], [p for p, k in zip(patches, pick) if k]
            if not len(ids):
                continue
        with torch.inference_mode():
            scores = model.score(_embeddings(model, vectors, patches), label_emb).float().cpu().numpy()
        current = _stored_tags(db, mv.id, ids.tolist()) if merge_stored else {int(i): {} for i in ids}
        kept, cols, labels = {}, _top_columns(scores, rule.top_n), np.asarray(label_ids)
        for row, image_id in enumerate(ids.tolist()):
            before = set(current[image_id])
            current[image_id].update(zip(labels[cols[row]].tolist(), scores[row, cols[row]].tolist()))
            best = rule.keep(current[image_id])
            if not merge_stored or {label for label, _ in best} != before:  # most images keep their tags
                kept[image_id] = best
        (_add_beside(db, mv.id, label_ids, kept) if beside else _write(db, mv.id, kept))
        n += len(ids)
    return n


def score_new_labels(settings: Settings) -> int:
    """Score the pending labels (just added, or left pending by an interrupted run) for every
    tagged image beside the visible tags, compute their rules, then switch them to active at once
    (and compute again the rules of the labels that lost tags to them); returns how many images
    were scored. No photo is read. Pending labels that are not scored (a group, a keyword with
    children: :mod:`core.keyword_tree`) switch to active without tags."""
    db = get_database(settings.db_url)
    with db.session() as s:
        pending = list(s.scalars(select(Label.id).where(Label.state == PENDING).order_by(Label.id)))
    if not pending:
        return 0
    labels = [entry for entry in vocabulary(db) if entry.id in set(pending)]
    rule, n, versions = Rule(settings.top_n, settings.min_score), 0, _tagged_versions(db)
    label_ids = [entry.id for entry in labels]
    models = {}
    for mv in versions:
        model = models[mv.id] = _model_of(mv, settings)
        if label_ids:
            n += _rescore(db, mv, model, label_ids, embed_labels(model, labels, db, mv.id), rule, beside=True)
            calibrate_version(db, model, mv.id, label_ids)
    trimmed = _activate(db, pending, versions, rule.top_n)
    for mv in versions:
        if trimmed.get(mv.id):
            calibrate_version(db, models[mv.id], mv.id, sorted(trimmed[mv.id]))
    return n


def remove_labels(settings: Settings, names: Sequence[str]) -> tuple[int, int]:
    """Delete labels and their tags; the images that lost a tag are re-scored against the remaining
    vocabulary. Returns (labels removed, images re-scored)."""
    db = get_database(settings.db_url)
    with db.session() as s:  # hidden from readers and from tagging at once
        ids = list(s.scalars(select(Label.id).where(Label.name.in_(list(names)))))
        s.execute(update(Label).where(Label.id.in_(ids)).values(state=REMOVING))
    with db.session() as s:
        affected = set(s.scalars(select(Tag.image_id).where(Tag.label_id.in_(ids)).distinct())) if ids else set()
        if ids:
            s.execute(delete(Tag).where(Tag.label_id.in_(ids)))
            s.execute(delete(Label).where(Label.id.in_(ids)))
    return len(ids), refill(settings, affected) if affected else 0


def refill(settings: Settings, image_ids: set[int]) -> int:
    """Score these images again against the whole vocabulary from stored embeddings, each keeping
    its best ``top_n`` as a re-tag stores (they lost tags: labels removed, no longer scored, or
    scored again: :func:`tagger.keyword_tree_store.settle`); returns how many were scored."""
    db = get_database(settings.db_url)
    rule, n, vocab, affected = Rule(settings.top_n, settings.min_score), 0, vocabulary(db), set(image_ids)
    for mv in _tagged_versions(db):
        model = _model_of(mv, settings)
        label_ids, label_emb = label_embeddings(model, vocab, db, mv.id)
        n += _rescore(db, mv, model, label_ids, label_emb, rule, only=affected, merge_stored=False)
        calibrate_version(db, model, mv.id, _labels_of(db, mv.id, affected))  # the labels they gained
    return n


def _labels_of(db: Database, mv_id: int, image_ids: set[int]) -> list[int]:
    """The labels of the stored tags of these images under a version."""
    out: set[int] = set()
    with db.session() as s:
        for chunk in chunks(sorted(image_ids)):
            out.update(s.scalars(select(Tag.label_id).where(Tag.model_version_id == mv_id, Tag.image_id.in_(chunk))
                                 .distinct()))
    return sorted(out)


def has_embeddings(db: Database) -> bool:
    with db.session() as s:
        return s.scalar(select(Embedding.image_id).limit(1)) is not None
