"""Near-duplicates: the cosine threshold per model, and folding a ranked list so that each group
of near-duplicates shows once ("+N similar").

Two photos are near-duplicates when the cosine of their stored global embeddings is at least the
model's threshold: a resized, re-encoded or cropped copy, or a burst shot a moment apart. The
thresholds of the bundled models were chosen by ``python -m bench.duplicates`` (the best recall at
a pairwise precision of at least 0.95 on generated variants: docs/benchmarks.md); other models
get :data:`DEFAULT_THRESHOLD`, the cosine distance of 0.01 that Immich's duplicate detection uses
with CLIP ViT-B-32 (``machineLearning.duplicateDetection.maxDistance``). The setting
``duplicate_threshold`` (``TAGSCOPE_DUPLICATE_THRESHOLD``) overrides both.

Light on purpose (numpy only): search imports it for every query, the CLI without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import TagscopeError
from core.settings import MIN_DUPLICATE_THRESHOLD

# Chosen by `python -m bench.duplicates` (2026-12-01; docs/benchmarks.md, "Near-duplicates").
CALIBRATED = {"synthetic-mkt": 0.995, "synthetic": 0.995}
DEFAULT_THRESHOLD = 0.99  # Immich: cosine distance <= 0.01 with ViT-B-32 (server/src/config.ts)
# Below this, photos are alike in subject at most, not copies: a lower threshold pairs most of a
# collection with most of it (work and memory that grow with the square of the photos).
MIN_THRESHOLD = MIN_DUPLICATE_THRESHOLD
FIX = "set duplicate_threshold (TAGSCOPE_DUPLICATE_THRESHOLD) or pass a threshold: a cosine similarity " \
      f"of at least {MIN_THRESHOLD} and at most 1, e.g. 0.95"


def check_threshold(value: float | str | None, source: str = "threshold") -> float | None:
    """A threshold given by a person (a flag, a query parameter, a setting): a cosine similarity in
    [``MIN_THRESHOLD``, 1], or None when not given. Raises :class:`TagscopeError` naming the fix."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise TagscopeError(f"bad {source} {value!r}: {FIX}") from None
    if not MIN_THRESHOLD <= threshold <= 1.0:  # NaN fails too
        raise TagscopeError(f"bad {source} {value!r}: {FIX}")
    return threshold


def threshold_for(spec: str | None, override: float | str | None = None) -> float:
    """The near-duplicate threshold of a model (its spec as stored with its version, e.g.
    ``synthetic-mkt`` or ``open_clip:ViT-B-32:laion2b_s34b_b79k``): ``override`` when given, else
    the calibrated one of a bundled model, else :data:`DEFAULT_THRESHOLD`."""
    given = check_threshold(override)
    if given is not None:
        return given
    return CALIBRATED.get(str(spec or ""), DEFAULT_THRESHOLD)


def fold_similar(ranked: Sequence[tuple[int, float]], vectors: np.ndarray, threshold: float,
                 ) -> tuple[list[tuple[int, float]], dict[int, list[int]]]:
    """Collapse near-duplicates in a ranking.

    ``ranked``: (image id, score) pairs, best first; ``vectors``: their stored global embeddings
    ``[len(ranked), D]``, L2-normalised, row ``n`` for ``ranked[n]``. Walking down the ranking, a
    hit whose cosine with an already KEPT hit is at least ``threshold`` is folded into the best
    ranked such hit; any other hit is kept. Returns the kept pairs in their order (scores
    unchanged) and, for each kept id that folded others, the folded ids in rank order (kept ids
    that folded nothing are absent). Only kept hits absorb others, so every folded hit is within
    the threshold of the hit it shows under: no chains (A~B, B~C, A far from C stay two hits)."""
    ranked = [(int(i), float(s)) for i, s in ranked]
    if not ranked:
        return [], {}
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ranked):
        raise ValueError(f"{len(ranked)} hits need vectors of shape ({len(ranked)}, D), got {vectors.shape}")
    kept_rows: list[int] = []
    folded: dict[int, list[int]] = {}
    kept_matrix = np.zeros((len(ranked), vectors.shape[1]), np.float32)
    for n, (image_id, _) in enumerate(ranked):
        if kept_rows:
            sims = kept_matrix[:len(kept_rows)] @ vectors[n]
            close = np.flatnonzero(sims >= threshold)
            if len(close):
                folded.setdefault(ranked[kept_rows[int(close[0])]][0], []).append(image_id)
                continue
        kept_matrix[len(kept_rows)] = vectors[n]
        kept_rows.append(n)
    return [ranked[n] for n in kept_rows], folded
