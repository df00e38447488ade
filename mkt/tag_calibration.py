"""How a model decides its tags: a rule per label (:class:`core.decisions.Rule`: a threshold on the
stored score and a slope for the confidence ``sigmoid(slope * (score - threshold))``).

Two sources of rules:

- **Bundle calibration** (``bundle.meta["tags"]``, fitted by :func:`fit` when an MKT bundle is built,
  on its validation set, for the labels it was trained on). Each seen label with at least
  ``MIN_POSITIVES`` positives gets its own threshold: the cut that maximises its F1 on the
  validation set, shrunk toward the pooled threshold (one cut for all seen labels, the one that
  maximises their micro F1) by ``prior`` pseudo-positives: ``(n * own + prior * pooled) / (n +
  prior)``, ``prior`` chosen by cross-validation on the same set (the photos in two halves: fit on
  one, score on the other). Its slope is a logistic fit of the truth on ``score - threshold``
  over the tags stored for it (each photo's ``top_n`` best), with thresholds cross-fitted (the
  threshold applied to a photo never saw it) so that confidence is not over-sure; shrunk toward
  the pooled slope in the same way. Labels of the bundle without an entry and labels it never
  saw (held out, or a user's) get the ``pooled`` rule -- unless, on seen labels held out of the
  fit (pseudo-unseen, in folds), the collection-derived rule did better, in which case
  ``"pooled"`` is null and they get collection rules. The choice and both figures are recorded.
- **Collection rules** (:func:`collection_rule`), for models without a calibration (zero-shot
  CLIP, open_clip) and where ``"pooled"`` is null: the label's cutoff as search computes it for a
  query text (:func:`mkt.calibration.cutoff_value` on its score distribution over the collection;
  None when nothing there matches), and slope ``k / (top - median)``: the confidence follows the
  label's own score spread. ``k`` is a constant of the model: the bundle's ``collection_slope``,
  else :data:`COLLECTION_SLOPE` (fitted on the synthetic world's validation set for the bundled
  zero-shot model, docs/search-quality.md).

The ``meta["tags"]`` block::

    {"labels": {name: {"threshold": t, "slope": s, "positives": n}}, "pooled": {"threshold": t,
     "slope": s} or None, "collection_slope": k, "unseen_rule": "pooled" | "collection",
     "top_n": 20, "min_positives": 5, "prior": m, "images": N, "fitted_on": ..., "diagnostics": {...}}

It is not part of the bundle's version: it changes which tags are called matches, never a score.
Pure numpy; the tagger computes and stores the rules (:mod:`tagger.decisions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.decisions import Rule
from mkt.calibration import Constants, Stats, cutoff_value, statistics

COLLECTION_SLOPE = 6.6  # k of collection rules for models without a calibration (see the module's docstring)
MIN_POSITIVES = 5  # a seen label with fewer positives on the validation set gets the pooled rule
PRIORS = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 1e9)  # shrinkage strengths tried (1e9: the pooled rule only)
TOP_N = 20  # tags stored per photo (core.settings' default top_n): only these can match
UNSEEN_FOLDS = 5  # folds of seen labels held out as pseudo-unseen to choose the unseen labels' rule
ECE_BINS = 10
SLOPE_PRIOR = 3.0  # weight of the pooled slope in each label's (a Gaussian prior on its log)
SLOPE_RANGE = (0.1, 1e4)  # a logistic slope is kept inside this (perfectly separated data has none)


# -- rules -------------------------------------------------------------------------------------
def bundle_rule(calibration: dict | None, name: str) -> Rule | None:
    """The rule of label ``name`` under a bundle's calibration (``meta["tags"]``): its own entry
    (source ``bundle``), else the pooled rule (``pooled``); None when the model has no calibration or
    its pooled rule is null: the label then gets a :func:`collection_rule`."""
    if not calibration:
        return None
    entries = calibration.get("labels") or {}
    entry = entries.get(name)
    if entry is None:
        key = " ".join(name.lower().split())
        entry = next((v for k, v in entries.items() if " ".join(k.lower().split()) == key), None)
    if entry is not None:
        return Rule(float(entry["threshold"]), float(entry["slope"]), "bundle")
    pooled = calibration.get("pooled")
    return None if pooled is None else Rule(float(pooled["threshold"]), float(pooled["slope"]), "pooled")


def collection_slope(calibration: dict | None) -> float:
    """``k`` of a model's collection rules: its calibration's, else :data:`COLLECTION_SLOPE`."""
    return float((calibration or {}).get("collection_slope") or COLLECTION_SLOPE)


def collection_rule(stats: Stats, constants: Constants, k: float = COLLECTION_SLOPE) -> Rule:
    """A label's rule from its score distribution over the collection (``stats`` as search computes
    them for a query): threshold :func:`mkt.calibration.cutoff_value` (None: nothing matches),
    slope ``k / (top - median)``."""
    spread = stats.top - stats.median
    slope = k / spread if np.isfinite(spread) and spread > 1e-6 else k / 1e-6
    return Rule(cutoff_value(stats, constants), float(min(slope, SLOPE_RANGE[1])), "collection")


# -- fitting -----------------------------------------------------------------------------------
def stored(scores: np.ndarray, top_n: int = TOP_N) -> np.ndarray:
    """[N, L] bool: the scores a photo's stored tags carry (its ``top_n`` best), the only ones that
    can match."""
    keep = np.zeros(scores.shape, bool)
    if top_n >= scores.shape[1]:
        keep[:] = True
        return keep
    np.put_along_axis(keep, np.argpartition(-scores, top_n - 1, axis=1)[:, :top_n], True, axis=1)
    return keep


def best_cut(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) of the cut with the best F1 on these scores, half-way between the lowest
    score it admits and the next one below (of equally good cuts, the highest); -inf scores (no tag
    stored) are never admitted, their positives count as missed. No positive it could admit: (inf, 0)."""
    scores, truth = np.ravel(scores).astype(np.float64), np.ravel(truth).astype(bool)
    finite = np.isfinite(scores)
    positives = int(truth.sum())  # those never admitted count against recall
    if not truth[finite].any():
        return float("inf"), 0.0
    order = np.argsort(-scores[finite], kind="stable")
    s, t = scores[finite][order], truth[finite][order]
    f1 = 2 * np.cumsum(t) / (np.arange(1, len(s) + 1) + positives)
    ends = np.flatnonzero(np.r_[s[1:] < s[:-1], True])  # a cut may only fall between distinct scores
    k = int(ends[np.argmax(f1[ends])])
    below = s[k + 1] if k + 1 < len(s) else s[k] - 1e-3
    return float((s[k] + below) / 2), float(f1[k])


def logistic_slope(x: np.ndarray, y: np.ndarray, prior: float = 0.0, centre: float = 1.0) -> float:
    """The slope ``a`` of ``P(y) = sigmoid(a * x)`` by maximum likelihood (Newton on log a), with a
    Gaussian prior of weight ``prior`` on ``log a`` around ``log centre``; within :data:`SLOPE_RANGE`."""
    x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
    log_a, mu = np.log(centre), np.log(centre)
    for _ in range(60):
        a = np.exp(log_a)
        p = 1 / (1 + np.exp(-np.clip(a * x, -60, 60)))
        g = a * np.sum((y - p) * x) - prior * (log_a - mu)  # d loglik / d log a
        h = -a * a * np.sum(p * (1 - p) * x * x) + a * np.sum((y - p) * x) - prior
        step = g / h if h < 0 else -np.sign(g)  # Newton where concave, else a unit step uphill
        log_a = float(np.clip(log_a - np.clip(step, -2, 2), *np.log(SLOPE_RANGE)))
        if abs(step) < 1e-6:
            break
    return float(np.exp(log_a))


def expected_calibration_error(confidence: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: over equal-width confidence bins, the mean |share true - mean confidence|, weighted by
    the share of cases in the bin."""
    c, t = np.ravel(confidence).astype(np.float64), np.ravel(truth).astype(np.float64)
    if not len(c):
        return 0.0
    which = np.minimum((c * bins).astype(int), bins - 1)
    return float(sum(abs(t[which == b].mean() - c[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def reliability(confidence: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, count, mean confidence and share true (the reliability diagram)."""
    c, t = np.ravel(confidence).astype(np.float64), np.ravel(truth).astype(np.float64)
    which = np.minimum((c * bins).astype(int), bins - 1)
    return [{"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": int((which == b).sum()),
             "confidence": round(float(c[which == b].mean()), 3), "true": round(float(t[which == b].mean()), 3)}
            for b in range(bins) if (which == b).any()]


def prf(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Micro precision, recall and F1 (rounded to 4 places)."""
    tp = float((predicted & truth).sum())
    p, r = tp / max(int(predicted.sum()), 1), tp / max(int(truth.sum()), 1)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-12), 4)}


def thresholds(masked: np.ndarray, truth: np.ndarray, prior: float, min_positives: int = MIN_POSITIVES
               ) -> tuple[float, np.ndarray]:
    """(pooled threshold, [L] per-label thresholds, NaN for labels with fewer than ``min_positives``
    positives) on stored scores (``masked``: -inf where no tag is stored)."""
    pooled, _ = best_cut(masked, truth)
    own = np.full(masked.shape[1], np.nan)
    for j in range(masked.shape[1]):
        n = int((truth[:, j] & np.isfinite(masked[:, j])).sum())  # positives it could match
        if n >= min_positives:
            cut, _ = best_cut(masked[:, j], truth[:, j])
            own[j] = pooled if prior >= 1e8 else (n * cut + prior * pooled) / (n + prior)
    return pooled, own


def _effective(pooled: float, own: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(own), pooled, own)


def _halves(n: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[: n // 2]), np.sort(order[n // 2:])]


def cross_fitted(masked: np.ndarray, truth: np.ndarray, priors: Sequence[float], min_positives: int,
                 seed: int = 0) -> tuple[float, np.ndarray, dict[float, float]]:
    """The prior with the best cross-validated micro F1 (fit the thresholds on one half of the photos,
    decide the other), the [N, L] thresholds each photo was decided with under it (fitted without
    it), and the F1 of every prior."""
    halves = _halves(len(masked), seed)
    best: tuple[float, float, np.ndarray] = (-1.0, 0.0, np.zeros(0))
    by_prior = {}
    for prior in priors:
        applied = np.zeros(masked.shape)
        for fit_on, decide in ((halves[0], halves[1]), (halves[1], halves[0])):
            pooled, own = thresholds(masked[fit_on], truth[fit_on], prior, min_positives)
            applied[decide] = _effective(pooled, own)
        f1 = prf(masked >= applied, truth)["f1"]
        by_prior[float(prior)] = f1
        if f1 > best[0] + 1e-9:
            best = (f1, float(prior), applied)
    return best[1], best[2], by_prior


def slopes(x: np.ndarray, truth: np.ndarray, keep: np.ndarray, own: np.ndarray, prior: float = 0.0
           ) -> tuple[float, np.ndarray]:
    """(pooled slope, [L] per-label slopes, NaN where ``own`` is NaN): logistic fits of the truth on
    ``x`` (score minus the threshold the photo was decided with) over the stored tags (``keep``),
    each label's shrunk toward the pooled one by a prior of weight ``prior`` on its log."""
    pooled = logistic_slope(x[keep], truth[keep])
    per = np.full(x.shape[1], np.nan)
    for j in np.flatnonzero(~np.isnan(own)):
        rows = keep[:, j]
        per[j] = logistic_slope(x[rows, j], truth[rows, j], prior=prior, centre=pooled)
    return pooled, per


def collection_rules(scores: np.ndarray, background: np.ndarray, constants: Constants
                     ) -> tuple[np.ndarray, np.ndarray]:
    """[L] thresholds (inf where nothing matches) and [L] spreads (top - median) of collection rules
    computed on this set (every photo in the sample)."""
    cut, spread = np.full(scores.shape[1], np.inf), np.zeros(scores.shape[1])
    for j in range(scores.shape[1]):
        s = statistics(scores[:, j], background)
        value = cutoff_value(s, constants)
        cut[j] = np.inf if value is None else value
        spread[j] = max(s.top - s.median, 1e-6)
    return cut, spread


def pseudo_unseen(masked: np.ndarray, truth: np.ndarray, keep: np.ndarray, scores: np.ndarray,
                  background: np.ndarray | None, constants: Constants, k: float, folds: int = UNSEEN_FOLDS,
                  seed: int = 0) -> dict:
    """Seen labels held out in folds, decided as unseen labels would be: by the pooled rule fitted on
    the other labels, or by their collection rule. Precision, recall, F1 and ECE of each."""
    groups = np.random.default_rng(seed).permutation(masked.shape[1]) % folds
    cut, conf = np.zeros(masked.shape), np.zeros(masked.shape)
    for f in range(folds):
        rest, held = groups != f, groups == f
        pooled, _ = best_cut(masked[:, rest], truth[:, rest])
        slope = logistic_slope((masked[:, rest] - pooled)[keep[:, rest]], truth[:, rest][keep[:, rest]])
        cut[:, held] = pooled
        conf[:, held] = 1 / (1 + np.exp(-np.clip(slope * (masked[:, held] - pooled), -60, 60)))
    ece = expected_calibration_error(conf[keep], truth[keep])
    out = {"pooled": {**prf(masked >= cut, truth), "ece": round(ece, 4)}}
    if background is not None:
        ccut, spread = collection_rules(scores, background, constants)
        z = np.where(np.isfinite(ccut), k * (masked - ccut) / spread, -60.0)
        cconf = 1 / (1 + np.exp(-np.clip(z, -60, 60)))
        out["collection"] = {**prf(masked >= ccut, truth),
                             "ece": round(expected_calibration_error(cconf[keep], truth[keep]), 4)}
    out["labels"], out["folds"] = int(masked.shape[1]), folds
    return out


def fit_collection_slope(scores: np.ndarray, truth: np.ndarray, background: np.ndarray, constants: Constants,
                         top_n: int = TOP_N, keep: np.ndarray | None = None) -> float:
    """``k`` of collection rules: the logistic slope of the truth on ``(score - cutoff) / (top - median)``
    over the stored tags of labels that get a cutoff."""
    keep = stored(scores, top_n) if keep is None else keep
    cut, spread = collection_rules(scores, background, constants)
    live = keep & np.isfinite(cut)[None, :]
    if not live.any():
        return COLLECTION_SLOPE
    return logistic_slope(((scores - cut) / spread)[live], truth[live])


def fit(scores: np.ndarray, truth: np.ndarray, names: Sequence[str], *, background: np.ndarray | None = None,
        constants: Constants | None = None, top_n: int = TOP_N, keep: np.ndarray | None = None,
        min_positives: int = MIN_POSITIVES, priors: Sequence[float] = PRIORS, slope_prior: float = SLOPE_PRIOR,
        seed: int = 0, fitted_on: str | None = None) -> dict:
    """A bundle's ``meta["tags"]`` from its scores ``[N, L]`` and the truth ``[N, L]`` (bool) of its
    seen labels ``names`` on a validation set (see the module's docstring). ``background`` [N] (each
    photo's best score on a background text) and ``constants`` (the bundle's relevance constants)
    let it weigh collection rules for unseen labels and fit their ``k``; without them unseen labels
    get the pooled rule. ``keep`` [N, L]: the scores stored as tags (default: each photo's ``top_n``
    best of these labels)."""
    scores, truth = np.asarray(scores, np.float64), np.asarray(truth).astype(bool)
    if scores.shape != truth.shape or scores.shape[1] != len(names):
        raise ValueError(f"scores {scores.shape}, truth {truth.shape} and {len(names)} names do not agree")
    keep = stored(scores, top_n) if keep is None else np.asarray(keep, bool)
    masked = np.where(keep, scores, -np.inf)
    constants = constants or Constants()
    prior, applied, by_prior = cross_fitted(masked, truth, priors, min_positives, seed)
    pooled, own = thresholds(masked, truth, prior, min_positives)
    x = np.where(keep, scores - applied, 0.0)  # cross-fitted: a photo's threshold was fitted without it
    pooled_slope, own_slope = slopes(x, truth, keep, own, slope_prior)
    k = fit_collection_slope(scores, truth, background, constants, keep=keep) if background is not None \
        else COLLECTION_SLOPE
    unseen = pseudo_unseen(masked, truth, keep, scores, background, constants, k, seed=seed)
    rule = "collection" if unseen.get("collection", {}).get("f1", -1) > unseen["pooled"]["f1"] else "pooled"
    pooled_rule = {"threshold": round(pooled, 6), "slope": round(pooled_slope, 4)}
    entries = {name: {"threshold": round(float(own[j]), 6), "slope": round(float(own_slope[j]), 4),
                      "positives": int(truth[:, j].sum())}
               for j, name in enumerate(names) if not np.isnan(own[j])}
    slope_of = np.where(np.isnan(own_slope), pooled_slope, own_slope)
    honest = 1 / (1 + np.exp(-np.clip(slope_of * x, -60, 60)))
    decided = masked >= _effective(pooled, own)
    diagnostics = {
        "validation": prf(decided, truth), "cross_validated": prf(masked >= applied, truth),
        "cross_validated_by_prior": {str(p): f for p, f in by_prior.items()},
        "ece": round(expected_calibration_error(honest[keep], truth[keep]), 4),
        "reliability": reliability(honest[keep], truth[keep]), "pseudo_unseen": unseen,
    }
    return {"labels": entries, "pooled": pooled_rule if rule == "pooled" else None,
            "collection_slope": round(float(k), 4), "unseen_rule": rule, "pooled_fit": pooled_rule,
            "top_n": int(top_n), "min_positives": int(min_positives), "prior": float(prior),
            "slope_prior": float(slope_prior), "images": int(len(scores)), "seen_labels": len(names),
            "fitted_on": fitted_on, "diagnostics": diagnostics}
