"""A model's relevance constants: how its scores say "this photo matches this text".

Search calibrates a cutoff per query text on the collection (:mod:`indexer.search.relevance`):
``median + alpha * (top - median)`` between the text's median score and the mean of its
``TOP_N`` best. Two guards say that nothing in the collection matches at all:

- ``guard``: the text's ``GUARD_N`` best photos fit it no better than a generic caption ("a photo
  of a thing.": mean margin below ``guard``);
- ``floor``: those photos score below ``floor`` for it, on the model's own scale (None: no floor).

The formula is the same for every model; ``alpha``, ``guard`` and ``floor`` are constants of the
model, because models score on different scales (an MKT bundle's two-stream score compresses
positives, its prompt-tuned text tower scores generic captions low). :func:`fit` chooses them on
an annotated set for the model's seen labels only, against KNOWN-ABSENT texts too: each seen label
in the set without its own photos (the collection as it would be if no photo showed it, partial
matches included), and texts the caller knows name nothing there. ``python -m
mkt.training.calibrate`` stores them in a bundle's ``meta`` (not part of its version: they change
which results are called matches, not any score). Unseen labels then use the constants fitted on
seen ones, the way MKT transfers everything else.

Models without fitted constants use ``ALPHA``, ``GUARD`` and no floor, chosen on the validation
set of the synthetic world for the bundled zero-shot model (docs/search-quality.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.7
GUARD = -0.1
# The cutoff's "top" and the guards look at a text's best few photos: a rare label has few, and in a
# small collection (the demo's 400 photos) a mean over 10 mixed in partial matches and let them pass.
TOP_N = 3
GUARD_N = 3
BACKGROUND_TEXTS = ("thing", "object", "photo", "picture", "image", "something", "stuff", "item")
ALPHAS = tuple(round(float(a), 2) for a in np.arange(0.3, 0.92, 0.02))
GUARDS = (-1.0, -0.3, -0.2, -0.15, -0.1, -0.05, -0.03, 0.0, 0.02, 0.05, 0.1)
FLOOR_QUANTILES = np.arange(0.0, 1.0, 0.02)  # floors tried: quantiles of the fitting cases' best scores
ABSENT_WEIGHT = 0.2  # the share of the fit's objective given to "says nothing when nothing is there"


@dataclass(frozen=True)
class Constants:
    alpha: float = ALPHA
    guard: float = GUARD
    floor: float | None = None

    @classmethod
    def of(cls, meta: dict | None) -> Constants:
        fitted = (meta or {}).get("relevance") or {}
        floor = fitted.get("floor")
        return cls(float(fitted.get("alpha", ALPHA)), float(fitted.get("guard", GUARD)),
                   None if floor is None else float(floor))


@dataclass(frozen=True)
class Stats:
    """One text's scores over a collection, as the cutoff needs them: the ``median``, ``top`` (the
    mean of the ``TOP_N`` best), and of the ``GUARD_N`` best photos their mean ``margin`` over
    their best generic caption and their mean score ``best``."""

    median: float
    top: float
    margin: float
    best: float


def statistics(scores: np.ndarray, background: np.ndarray) -> Stats:
    """:class:`Stats` of one text's scores over a collection, ``background`` being each photo's
    best score on a background text."""
    order = np.argsort(-scores, kind="stable")
    few = order[:GUARD_N]
    return Stats(float(np.median(scores)), float(scores[order[:TOP_N]].mean()),
                 float((scores[few] - background[few]).mean()), float(scores[few].mean()))


def says_nothing(s: Stats, c: Constants) -> bool:
    """True when a guard says nothing in the collection matches the text."""
    return not s.top > s.median or s.margin < c.guard or (c.floor is not None and s.best < c.floor)


def cutoff_value(s: Stats, c: Constants) -> float | None:
    """The cutoff, or None when nothing matches."""
    return None if says_nothing(s, c) else s.median + c.alpha * (s.top - s.median)


def fit(scores: np.ndarray, truth: np.ndarray, background: np.ndarray, absent: np.ndarray | None = None,
        absent_weight: float = ABSENT_WEIGHT) -> dict[str, float | None]:
    """The (alpha, guard, floor) of the grid that maximise, on an annotated set, the mean F1 over
    labels of ``matches`` (weight ``1 - absent_weight``) plus the share of known-absent cases for
    which nothing matches (``absent_weight``). ``scores`` and ``truth`` are [N, L] (the model's
    stored score; True where the label applies), ``background`` [N]. Known-absent cases: each label
    on the set without its own photos, and the columns of ``absent`` [N, A] (scores of texts that
    name nothing in the set), which must match nothing at all. Labels without a positive are left out."""
    keep = truth.any(axis=0)
    scores, truth = scores[:, keep], truth[:, keep]
    present = [statistics(scores[:, j], background) for j in range(scores.shape[1])]
    removed = [statistics(scores[~truth[:, j], j], background[~truth[:, j]]) for j in range(scores.shape[1])
               if truth[:, j].mean() < 0.5]
    foreign = [statistics(absent[:, j], background) for j in range(absent.shape[1])] if absent is not None else []
    f1 = _f1_by_alpha(scores, truth, present)
    floors = [None, *sorted({float(np.quantile([s.best for s in present + removed + foreign], q))
                             for q in FLOOR_QUANTILES})]
    best: dict = {"objective": -1.0}
    for guard in GUARDS:
        for floor in floors:
            c = Constants(ALPHA, guard, floor)
            if any(not says_nothing(s, c) for s in foreign):
                continue  # a text known to name nothing here would get matches
            open_ = np.array([not says_nothing(s, c) for s in present])
            empty = float(np.mean([says_nothing(s, c) for s in removed])) if removed else 1.0
            by_alpha = (f1 * open_[:, None]).mean(axis=0)
            a = int(np.argmax(by_alpha))
            objective = (1 - absent_weight) * by_alpha[a] + absent_weight * empty
            if objective > best["objective"] + 1e-9:
                best = {"alpha": ALPHAS[a], "guard": guard, "floor": floor, "objective": float(objective),
                        "f1": float(by_alpha[a]), "absent_empty": empty}
    if "alpha" not in best:  # nothing keeps the foreign texts empty: fit without them
        return fit(scores, truth, background, None, absent_weight)
    return {**best, "labels": int(keep.sum()), "absent_cases": len(removed) + len(foreign), "images": int(len(scores))}


def _f1_by_alpha(scores: np.ndarray, truth: np.ndarray, stats: list[Stats]) -> np.ndarray:
    """[L, len(ALPHAS)]: each label's F1 of ``matches`` for each alpha (guards aside)."""
    out = np.zeros((scores.shape[1], len(ALPHAS)))
    for j, s in enumerate(stats):
        for a, alpha in enumerate(ALPHAS):
            predicted = scores[:, j] >= s.median + alpha * (s.top - s.median)
            out[j, a] = 2 * float((predicted & truth[:, j]).sum()) / max(predicted.sum() + truth[:, j].sum(), 1)
    return out
