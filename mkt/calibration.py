"""A model's relevance constants: how its scores say "this photo matches this text".

Search calibrates a cutoff per query text on the collection (:mod:`indexer.search.relevance`):
``median + alpha * (top - median)`` between the text's median score and the mean of its
``TOP_N`` best, and no match at all when its ``GUARD_N`` best photos fit it no better than a
generic caption (mean margin below ``guard``). The formula is the same for every model; ``alpha``
and ``guard`` are constants of the model, because models score on different scales (an MKT
bundle's two-stream score compresses positives, its prompt-tuned text tower scores generic
captions low). :func:`fit` chooses them on an annotated set for the model's seen labels only, and
``python -m mkt.training.calibrate`` stores them in a bundle's ``meta`` (not part of its version: they
change which results are called matches, not any score). Unseen labels then use the constants
fitted on seen ones, the way MKT transfers everything else.

Models without fitted constants use ``ALPHA`` and ``GUARD``, chosen on the validation set of the
synthetic world for the bundled model (docs/search-quality.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.72
GUARD = -0.1
TOP_N = 10
GUARD_N = 3  # the background margin is that of a text's best few photos: a rare label has few
BACKGROUND_TEXTS = ("thing", "object", "photo", "picture", "image", "something", "stuff", "item")
ALPHAS = tuple(round(float(a), 2) for a in np.arange(0.3, 0.92, 0.02))
GUARDS = (-1.0, -0.3, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1)


@dataclass(frozen=True)
class Constants:
    alpha: float = ALPHA
    guard: float = GUARD

    @classmethod
    def of(cls, meta: dict | None) -> Constants:
        fitted = (meta or {}).get("relevance") or {}
        return cls(float(fitted.get("alpha", ALPHA)), float(fitted.get("guard", GUARD)))


def statistics(scores: np.ndarray, background: np.ndarray) -> tuple[float, float, float]:
    """(median, top, margin) of one text's scores over a collection, ``background`` being each
    photo's best score on a background text."""
    order = np.argsort(-scores, kind="stable")
    best = order[:GUARD_N]
    return (float(np.median(scores)), float(scores[order[:TOP_N]].mean()),
            float((scores[best] - background[best]).mean()))


def cutoff_value(median: float, top: float, margin: float, c: Constants) -> float | None:
    """The cutoff, or None when nothing matches."""
    if not top > median or margin < c.guard:
        return None
    return median + c.alpha * (top - median)


def fit(scores: np.ndarray, truth: np.ndarray, background: np.ndarray) -> dict[str, float]:
    """The (alpha, guard) of the grid that maximise the mean F1 over labels of ``matches`` on an
    annotated set: ``scores`` and ``truth`` are [N, L] (the model's stored score; True where the
    label applies), ``background`` [N]. Labels without a positive are left out."""
    keep = truth.any(axis=0)
    scores, truth = scores[:, keep], truth[:, keep]
    stats = [statistics(scores[:, j], background) for j in range(scores.shape[1])]
    best: dict[str, float] = {"f1": -1.0}
    for guard in GUARDS:
        for alpha in ALPHAS:
            c = Constants(alpha, guard)
            f1s = []
            for j, (median, top, margin) in enumerate(stats):
                value = cutoff_value(median, top, margin, c)
                predicted = scores[:, j] >= value if value is not None else np.zeros(len(scores), bool)
                tp = float((predicted & truth[:, j]).sum())
                f1s.append(2 * tp / max(predicted.sum() + truth[:, j].sum(), 1))
            if np.mean(f1s) > best["f1"] + 1e-9:
                best = {"alpha": float(alpha), "guard": float(guard), "f1": float(np.mean(f1s))}
    return {**best, "labels": int(keep.sum()), "images": int(len(scores))}
