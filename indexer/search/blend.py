"""The words in photos in search: a plain query raises the photos whose text holds its words, and
hits carry the words found.

A plain query (one text, no operators) is also looked for as words (:mod:`indexer.search.words`:
folded, the last word a prefix too, long words one letter off) among the photos passing the
filters. A photo whose text holds every word of the query *matches*, and its score is raised:

    score = max(s, cutoff) + t * (top - median)

``s`` is the model's score of the photo for the query, ``cutoff`` the query's calibrated cutoff
(its ``top`` when nothing matches by the model), ``top - median`` the query's own range on this
collection (from its 3 best photos to an unrelated one, :mod:`indexer.search.relevance`) and ``t``
the text score (0 to 1: the OCR confidence of the lines holding the words, halved for a word found
only one letter off). So a photo that clearly shows the words comes in among the query's best
photos whatever the model made of it, one read less surely a little lower, and the model's score
still orders photos that both show the words. At most ``max(depth, RERANK_POOL)`` photos found
by their words are raised (the best text scores).

``text:`` parts of queries with operators find photos by their words only (:mod:`indexer.search.parts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from core.db import Database
from indexer.search import words
from indexer.search.checks import RERANK_POOL
from indexer.search.filters import Filters
from indexer.search.relevance import Cutoff
from indexer.search.results import Hit
from indexer.search.scoring import rerank
from mkt.tagmodel import TagModel


@dataclass(frozen=True)
class Found:
    """The photos a query found by their words (``ids``) and the words it looked for."""

    query: words.WordQuery = words.WordQuery(())
    ids: frozenset[int] = field(default_factory=frozenset)


def scale(cutoff: Cutoff | None) -> tuple[float | None, float]:
    """(the floor a photo found by its words is raised to, the score a text score of 1 adds)."""
    if cutoff is None or not math.isfinite(cutoff.top):
        return None, 0.0
    floor = cutoff.value if cutoff.value is not None else cutoff.top
    span = cutoff.top - cutoff.median if math.isfinite(cutoff.median) else 0.0
    return floor, max(span, 0.0)


def raise_found(db: Database, model: TagModel, version_id: int, text: str, query: torch.Tensor,
                ranked: list[tuple[int, float]], cutoff: Cutoff | None, filters: Filters | None,
                depth: int) -> tuple[list[tuple[int, float]], Found]:
    """``ranked`` (a plain query's (id, score), best first) with the photos whose text holds the
    query's words raised (the module's formula; scored by the model first when not among them),
    best first again, and what was found."""
    wanted = words.parse(text, strict=False)
    if not wanted:
        return ranked, Found()
    wanted = words.expand(db, wanted)
    found = words.find(db, wanted, version_id, filters, limit=max(depth, RERANK_POOL))
    if not found:
        return ranked, Found(wanted)
    scores = dict(ranked)
    missing = [i for i in found if i not in scores]
    if missing:
        ids, model_scores = rerank(model, db, version_id, np.array(missing, np.int64), query)
        scores.update((int(i), float(s)) for i, s in zip(ids, model_scores))
    floor, unit = scale(cutoff)
    for i, t in found.items():
        if i in scores:
            scores[i] = (scores[i] if floor is None else max(scores[i], floor)) + t * unit
    return sorted(scores.items(), key=lambda kv: -kv[1]), Found(wanted, frozenset(found) & frozenset(scores))


def mark(db: Database, hits: list[Hit], found: Found) -> list[Hit]:
    """``hits`` with those found by their words matching, and carrying the words found (one
    statement for the page)."""
    page = [h.image_id for h in hits if h.image_id in found.ids]
    if not page:
        return hits
    shown = words.found_words(db, found.query, page)
    return [replace(h, match=True, words=shown.get(h.image_id, ())) if h.image_id in found.ids else h for h in hits]
