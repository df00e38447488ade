"""Scoring candidates by the model's own score from their stored embeddings (no photo read)."""

from __future__ import annotations

import numpy as np
import torch

from core.db import Database
from indexer import store
from mkt.tagmodel import ImageEmbeddings, TagModel


def score_texts(model: TagModel, db: Database, model_version_id: int, ids: np.ndarray, queries: torch.Tensor,
                by_model: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores [N, Q]) of the candidates ``ids`` under each query of ``queries`` [Q, D] by the
    model's own score (:meth:`TagModel.score`: the two-stream score for MKT models; with
    ``by_model`` False the cosine of global embeddings, for image queries), from their stored
    embeddings, ordered by id. Candidates without a stored embedding (no longer
    tagged) drop out."""
    found, vectors, patches = store.get_with_patches(db, model_version_id, ids.tolist(), model.embed_dim,
                                                     patches=by_model and model.local_top_k > 0)
    if not len(found):
        return found, np.zeros((0, len(queries)), np.float32)
    emb = ImageEmbeddings(torch.from_numpy(vectors).to(model.device),
                          None if patches is None else torch.from_numpy(patches).to(model.device))
    with torch.inference_mode():
        scores = model.score(emb, queries.to(model.device)).float().cpu().numpy()
    return found, scores


def rerank(model: TagModel, db: Database, model_version_id: int, ids: np.ndarray, query: torch.Tensor,
           by_model: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of the candidates ``ids`` by :func:`score_texts` for one query, best first."""
    found, scores = score_texts(model, db, model_version_id, ids, query, by_model)
    if not len(found):
        return found, np.zeros(0, np.float32)
    order = np.argsort(-scores[:, 0], kind="stable")
    return found[order], scores[order, 0]
