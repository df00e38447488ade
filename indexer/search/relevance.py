"""Relevance cutoffs calibrated per query: which results "match" and which are only the nearest.

One flat similarity cutoff cannot work (Immich's maintainers: the best score of one query can be
below a relevant score of another), and no one ships thresholds for labels no one trained on.
Here every query text gets its own cutoff from two things the collection itself says:

- Its score distribution: the median score of a uniform sample of the collection (what an
  unrelated photo scores) and ``top``, the mean of the query's ``TOP_N`` best scores over the
  whole collection (what its clearest matches score). The cutoff lies a fixed share ``alpha`` of
  the way from the one to the other: ``median + alpha * (top - median)``. Both ends move with the
  query, so the cutoff follows each text's own scale. For compositional texts ("red circle")
  partial matches (red things, circles) fill the middle of the range, and alpha is high enough
  to leave them out.
- Two guards say a query describes nothing in the collection, so that no result matches
  ("tax return" on a collection of shapes): its ``GUARD_N`` best photos fit it no better than
  they fit a generic caption ("a photo of a thing.": mean margin below ``guard``), or score below
  the model's ``floor`` for it.

``alpha``, ``guard`` and ``floor`` are constants of the model (:mod:`mkt.calibration`: fitted on an MKT
bundle's seen labels and stored in it; for other models chosen on a validation set of the
synthetic world). Measured on a separate test set (``python -m bench.relevance``; precision
and recall per label family, seen and unseen, in docs/search-quality.md).

A pure library over numpy/torch and the embedding store; the searcher keeps one
:class:`Calibrator` per model version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.db import Database
from indexer import store
from mkt.calibration import BACKGROUND_TEXTS, GUARD_N, TOP_N, Constants, Stats, cutoff_value
from mkt.tagmodel import ImageEmbeddings, TagModel

SAMPLE = 4096  # images whose scores estimate a query's median (2 KiB each at 512-d)
SAMPLE_BYTES = 128 << 20  # at most this much for the sample (patch features of MKT bundles are large)
RESAMPLE_GROWTH = 0.1  # draw a new sample once the collection grew or shrank by this share
RECOUNT_S = 30.0  # how often the collection's size is checked for that


@dataclass(frozen=True)
class Cutoff:
    """A query's cutoff: results scoring at least ``value`` match; ``value`` is None when nothing
    in the collection matches. ``stats`` (:class:`mkt.calibration.Stats`) say how it was derived."""

    value: float | None
    stats: Stats
    constants: Constants = Constants()

    @property
    def median(self) -> float:
        return self.stats.median

    @property
    def top(self) -> float:
        return self.stats.top

    @property
    def margin(self) -> float:
        return self.stats.margin

    def matches(self, score: float) -> bool:
        return self.value is not None and score >= self.value

    def to_json(self) -> dict[str, Any]:
        if not np.isfinite(self.median):  # an empty collection: nothing to calibrate on
            return {"cutoff": None, "calibration": None}
        c = self.constants
        return {"cutoff": None if self.value is None else round(self.value, 6),
                "calibration": {"median": round(self.median, 6), "top": round(self.top, 6),
                                "background_margin": round(self.margin, 6), "best": round(self.stats.best, 6),
                                "alpha": c.alpha, "guard": c.guard, "floor": c.floor,
                                "top_n": TOP_N, "guard_n": GUARD_N}}


def calibrate(sample_scores: np.ndarray, top_scores: np.ndarray, top_background: np.ndarray,
              constants: Constants = Constants()) -> Cutoff:
    """The cutoff from a query's scores on a uniform sample of the collection, its best scores over
    the whole collection (up to ``TOP_N``, best first) and, for those same photos, their best
    score on a background text (:func:`mkt.calibration.cutoff_value`)."""
    top_scores = np.asarray(top_scores, np.float64)[:TOP_N]
    if not len(top_scores):
        nan = float("nan")
        return Cutoff(None, Stats(nan, nan, nan, nan))
    pool = np.asarray(sample_scores, np.float64)
    median = float(np.median(pool)) if len(pool) else float(top_scores[-1])
    margins = top_scores[:GUARD_N] - np.asarray(top_background, np.float64)[:GUARD_N]
    stats = Stats(median, float(top_scores.mean()), float(margins.mean()), float(top_scores[:GUARD_N].mean()))
    return Cutoff(cutoff_value(stats, constants), stats, constants)


class Calibrator:
    """What one model version's cutoffs need: the stored embeddings of a uniform sample of the
    collection (drawn again when the collection's size changed by ``RESAMPLE_GROWTH``) and the
    background texts' embeddings."""

    def __init__(self, model: TagModel, db: Database, model_version_id: int) -> None:
        self.model, self.db, self.model_version_id = model, db, model_version_id
        self._lock = threading.Lock()
        self._sample: ImageEmbeddings | None = None
        self._sampled_at = 0
        self._checked = 0.0
        with torch.inference_mode():
            self._background = model.encode_labels(list(BACKGROUND_TEXTS)).float()

    def sample_size(self) -> int:
        per_image = 4 * self.model.embed_dim * (1 + (self._patch_count() if self.model.local_top_k > 0 else 0))
        return max(64, min(SAMPLE, SAMPLE_BYTES // per_image))

    def _patch_count(self) -> int:
        grid = getattr(self.model.clip.visual, "grid_size", (14, 14))
        return int(np.prod(grid)) + 1

    def _embeddings(self) -> ImageEmbeddings:
        with self._lock:
            if self._sample is not None and time.monotonic() < self._checked + RECOUNT_S:
                return self._sample
        count = store.count(self.db, self.model_version_id)
        with self._lock:
            self._checked = time.monotonic()
            if self._sample is None or abs(count - self._sampled_at) > RESAMPLE_GROWTH * max(self._sampled_at, 1):
                ids = store.sample_ids(self.db, self.model_version_id, self.sample_size(), seed=0)
                self._sample = self._load(ids)
                self._sampled_at = count
            return self._sample

    def _load(self, ids: np.ndarray) -> ImageEmbeddings:
        patches = self.model.local_top_k > 0
        _, vectors, local = store.get_with_patches(self.db, self.model_version_id, ids.tolist(),
                                                   self.model.embed_dim, patches=patches)
        device = self.model.device
        return ImageEmbeddings(torch.from_numpy(vectors).to(device),
                               None if local is None else torch.from_numpy(local).to(device))

    def cutoff(self, query: torch.Tensor, top_ids: np.ndarray, top_scores: np.ndarray) -> Cutoff:
        """The cutoff of the query embedding ``query`` [1, D], given its best photos (ids, scores,
        best first: the search's own results)."""
        top_ids, top_scores = np.asarray(top_ids)[:TOP_N], np.asarray(top_scores)[:TOP_N]
        sample = self._embeddings()
        found, vectors, local = store.get_with_patches(self.db, self.model_version_id, top_ids.tolist(),
                                                       self.model.embed_dim, patches=self.model.local_top_k > 0)
        device = self.model.device
        tops = ImageEmbeddings(torch.from_numpy(vectors).to(device),
                               None if local is None else torch.from_numpy(local).to(device))
        with torch.inference_mode():
            sample_scores = self.model.score(sample, query.to(device)).float().cpu().numpy()[:, 0]
            background = self.model.score(tops, self._background.to(device)).float().cpu().numpy().max(axis=1)
        by_id = dict(zip(found.tolist(), background.tolist()))
        keep = [k for k, i in enumerate(top_ids.tolist()) if i in by_id]
        return calibrate(sample_scores, top_scores[keep], np.array([by_id[int(top_ids[k])] for k in keep]),
                         self.model.relevance)
