"""Why a tag: which patches of a photo support a label, for models with a local stream.

MKT's two-stream score adds to the global cosine the mean of the ``local_top_k`` best patch
cosines (:func:`mkt.tagmodel.local_scores`). The same patch cosines, from the photo's stored
patch features and the label's embedding, say where in the photo the label was seen: one value
per grid cell of the ViT, the ``local_top_k`` best marked. Each cell's value is the label's
share of that patch among the collection's vocabulary (a softmax over the labels at twice the
model's logit scale, the paper's label-axis normalisation; the factor was chosen on a
validation set): raw cosines favour texture patches that resemble every label a little
(``python -m bench.evidence``: docs/search-quality.md). A plain CLIP model scores the whole image at once:
there is no such map, and :func:`evidence` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sqlalchemy import select

from core.db import Database
from core.schema import Label
from indexer import store, text_store
from mkt.tagmodel import TagModel

SHARPNESS = 2.0  # the share's softmax runs at this many times the model's logit scale (chosen on validation)
NO_LOCAL_STREAM = ("this model scores the whole photo at once (no local stream): there is no map of where a tag "
                   "comes from; MKT bundles have one")


@dataclass(frozen=True)
class Evidence:
    """Patch scores of one label on one photo: ``scores`` row-major over a ``grid`` (rows, columns)
    laid over the photo as the model saw it; ``top`` the indices the local stream averages."""

    label: str
    available: bool
    reason: str | None = None
    grid: tuple[int, int] = (0, 0)
    scores: list[float] = field(default_factory=list)
    top: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "available": self.available, "reason": self.reason, "grid": list(self.grid),
                "scores": [round(s, 5) for s in self.scores], "top": self.top}

    def best_cell(self) -> tuple[int, int] | None:
        if not self.scores:
            return None
        best = int(np.argmax(self.scores))
        return best // self.grid[1], best % self.grid[1]


def grid_of(model: TagModel, patches: int) -> tuple[int, int]:
    grid = getattr(model.clip.visual, "grid_size", None)
    if grid is not None and int(grid[0]) * int(grid[1]) == patches:
        return int(grid[0]), int(grid[1])
    side = math.isqrt(patches)
    return (side, patches // side) if side * (patches // side) == patches else (1, patches)


@torch.no_grad()
def patch_evidence(model: TagModel, patches: np.ndarray, label_emb: torch.Tensor, label: str,
                   vocabulary: torch.Tensor | None = None) -> Evidence:
    """The evidence from patch features [P, D] (normalised), a label embedding [1, D] and the
    embeddings [V, D] of the vocabulary the label competes with in each patch (None: raw cosines)."""
    local = torch.from_numpy(np.ascontiguousarray(patches, np.float32))
    label_emb = label_emb.float().cpu().reshape(1, -1)
    cosines = local @ label_emb[0]
    if vocabulary is not None and len(vocabulary):
        others = vocabulary.float().cpu()
        others = others[(others @ label_emb[0]) < 0.9999]  # the label itself, when in the vocabulary
        logit_scale = getattr(model.clip, "logit_scale", None)
        scale = SHARPNESS * (float(logit_scale.detach().exp()) if logit_scale is not None else 100.0)
        logits = torch.cat([cosines[:, None], local @ others.T], dim=1) * scale
        scores = torch.softmax(logits, dim=1)[:, 0].numpy()
    else:
        scores = cosines.numpy()
    k = min(max(1, model.local_top_k), len(scores))
    top = np.argsort(-scores, kind="stable")[:k]
    return Evidence(label, True, None, grid_of(model, len(scores)), scores.tolist(), sorted(int(i) for i in top))


def evidence(model: TagModel, db: Database, model_version_id: int, image_id: int, label_emb: torch.Tensor,
             label: str) -> Evidence:
    """Where the stored photo ``image_id`` supports ``label`` (see the module docstring)."""
    if model.local_top_k <= 0 or not model.has_patches:
        return Evidence(label, False, NO_LOCAL_STREAM)
    found, _, patches = store.get_with_patches(db, model_version_id, [image_id], model.embed_dim, patches=True)
    if not len(found) or patches is None:
        return Evidence(label, False, "no stored patch features for this photo: tag it again with this model")
    with db.session() as s:
        names = list(s.scalars(select(Label.name).where(Label.state == "active").order_by(Label.id)))
    vocabulary, _ = text_store.get_or_encode(db, model, model_version_id, names)
    return patch_evidence(model, patches[0], label_emb, label, vocabulary)
