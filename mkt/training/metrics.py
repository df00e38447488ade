"""Multi-label ranking metrics exactly as the MKT/BiAM evaluation protocol computes them.

Labels are numpy arrays ``[N, C]`` with entries in {1, -1, 0}: positive, negative, ignored.
Scores are ``[N, C]`` floats (higher = more likely). Results are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores and labels must both be [N, C]; got {scores.shape} and {labels.shape}")
    bad = ~np.isin(labels, (-1, 0, 1))
    if bad.any():
        raise ValueError("labels must contain only 1 (positive), -1 (negative) and 0 (ignored)")
    return scores, labels


def average_precisions(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-label non-interpolated AP over the images annotated +1 or -1 for that label.

    A label without positives gets AP 0 (the official protocol keeps it in the mean).
    Ties in score are broken by image order (stable sort), as a plain argsort would.
    """
    scores, labels = _check(scores, labels)
    aps = np.zeros(scores.shape[1])
    for c in range(scores.shape[1]):
        keep = labels[:, c] != 0
        s, y = scores[keep, c], labels[keep, c]
        if not (y == 1).any():
            continue
        order = np.argsort(-s, kind="stable")
        hits = (y[order] == 1).astype(np.float64)
        ranks = np.arange(1, len(hits) + 1)
        precision_at_hit = np.cumsum(hits)[hits == 1] / ranks[hits == 1]
        aps[c] = precision_at_hit.mean()
    return aps


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over ALL labels of :func:`average_precisions` (labels without positives count 0)."""
    return float(average_precisions(scores, labels).mean())


def f1_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float, float]:
    """Overall (micro) F1@K: every image's top-K labels are predicted positive.

    Returns ``(f1, precision, recall)`` with precision = TP / (N*K) and recall = TP / #positives.
    """
    scores, labels = _check(scores, labels)
    n, c = scores.shape
    if not 1 <= k <= c:
        raise ValueError(f"k must be between 1 and the number of labels ({c}), got {k}")
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    tp = float((np.take_along_axis(labels, topk, axis=1) == 1).sum())
    positives = float((labels == 1).sum())
    precision = tp / (n * k) if n else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f1, precision, recall
