"""Queries with operators (:mod:`indexer.search.query`): ``a + b``, ``a -b``, ``2:a``, searched
over the same index, filters and stored embeddings as one text, and ``text:`` parts by the words
in photos (:mod:`indexer.search.words`). :class:`~indexer.search.searcher.Searcher`
hands them here as itself, through the public API operator queries need (:class:`OperatorSearch`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch

from core.db import Database
from indexer.search import blend, feedback, words
from indexer.search import filters as flt
from indexer.search import query as grammar
from indexer.search.checks import MAX_POOL, RERANK_POOL, SORT_POOL
from indexer.search.filters import Filters
from indexer.search.hits import page_hits
from indexer.search.relevance import Cutoff
from indexer.search.results import Results, model_info
from indexer.search.scoring import score_texts
from indexer.search.shots import Shot, as_shots, stacks
from mkt.tagmodel import TagModel


class OperatorSearch(Protocol):
    """What a query with operators asks of the searcher (:class:`~indexer.search.searcher.Searcher`
    is one): the served model and its database, and over them a text's embedding and calibrated
    cutoff, the best candidates for an embedding (filtered), near-duplicates folded, matches by date."""

    @property
    def db(self) -> Database: ...

    @property
    def model(self) -> TagModel: ...

    def version_id(self) -> int: ...

    def embed_query(self, text: str) -> torch.Tensor: ...

    def cutoff(self, text: str, query: torch.Tensor) -> Cutoff: ...

    def candidates(self, query: torch.Tensor, n: int, filters: Filters | None = None, by_model: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]: ...

    def fold(self, ranked: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], dict[int, list[int]]]: ...

    def dated(self, ranked: list[tuple[int, float]], sort: str,
              matched: Callable[[int, float], bool] | None) -> list[tuple[int, float]]: ...


def find(searcher: OperatorSearch, parsed: grammar.Query, k: int, offset: int, min_score: float | None,
         filters: Filters | None, sort: str) -> Results:
    """A query with operators (:mod:`indexer.search.query`): candidates by the weighted sum of
    its positive texts' embeddings; each scored by every part; a photo's score is the weighted
    mean of its positive parts' scores, it matches when it matches all of them, and a photo
    matching a negative part is left out. Matches come first. People's verdicts on the positive
    texts rule as on one text (:func:`indexer.search.feedback.curate`): a photo rejected for one
    of them never shows; one confirmed for one of them comes first and matches that part.
    ``text:`` parts (:mod:`indexer.search.words`): the photos whose text holds a positive one's
    words are candidates too and only they match; those holding a negative one's are left out;
    with no positive text, the photos found by their words, best text score first
    (:func:`by_words`)."""
    positive, negative = parsed.positive, parsed.negative
    wanted, unwanted = word_queries(searcher.db, parsed)
    if not any(not p.words for p in positive):
        return by_words(searcher, parsed, wanted, unwanted, k, offset, min_score, filters, sort)
    positive = tuple(p for p in positive if not p.words)
    negative = tuple(p for p in negative if not p.words)
    queries = {p.text: searcher.embed_query(p.text) for p in parsed.parts if not p.words}
    weights = np.array([p.weight for p in positive], np.float32)
    combined = sum(float(w) * queries[p.text] for w, p in zip(weights, positive))
    combined = combined / combined.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    depth = 2 * (offset + k + 1)
    pool = min(MAX_POOL, max(depth if sort == "relevance" else SORT_POOL, RERANK_POOL) * (2 if negative else 1))
    ids, _ = searcher.candidates(combined, pool, filters, by_model=True)
    found = words.find(searcher.db, wanted, searcher.version_id(), filters, limit=pool) if wanted else None
    confirmed_for, rejected = verdicts(searcher, positive, filters)
    confirmed = set().union(*confirmed_for.values())
    texts = list(queries)
    scored, scores = score_texts(searcher.model, searcher.db, searcher.version_id(),
                                    np.union1d(np.union1d(ids, np.array(sorted(confirmed), np.int64)),
                                               np.array(sorted(found or ()), np.int64)),
                                    torch.cat([queries[t] for t in texts]))
    column = {t: n for n, t in enumerate(texts)}
    cutoffs = {t: searcher.cutoff(t, queries[t]) for t in texts}
    pos_scores = np.stack([scores[:, column[p.text]] for p in positive], 1)
    total = pos_scores @ weights / weights.sum()
    left_out = excluded(searcher, scored, negative, scores, column, cutoffs)
    left_out |= without_words(searcher, unwanted, scored.tolist())
    matches = matching(scored, pos_scores, positive, cutoffs, confirmed_for)
    if found is not None:
        matches &= set(found)
    ranked = [(int(i), float(t)) for i, t in zip(scored, total) if int(i) not in left_out]
    first = sorted((r for r in ranked if r[0] in confirmed), key=lambda r: (r[0] not in matches, -r[1]))
    ranked, shots = as_shots(searcher.db, searcher.model, searcher.version_id(), combined, ranked, by_model=True)
    ranked = [(i, sc) for i, sc in ranked if min_score is None or sc >= min_score]
    ranked.sort(key=lambda r: (r[0] not in matches, -r[1]))
    ranked, similar = searcher.fold(feedback.curate(ranked, first, rejected))
    if sort != "relevance":
        ranked = searcher.dated(ranked, sort, lambda i, sc: i in matches)
    page = ranked[offset:offset + k]
    cutoff = cutoffs[positive[0].text]
    hits = [replace(h, match=h.image_id in matches)
            for h in page_hits(searcher.db, page, cutoff, {i for i, _ in first}, shots, similar)]
    hits = blend.mark(searcher.db, hits, blend.Found(wanted, frozenset(found or ()) & matches))
    return Results(parsed.text, hits, offset, len(ranked) > offset + k, cutoff, filters or Filters(),
                   model_info(searcher.model, positive[0].text), sort, parts_json(parsed, cutoffs))


def word_queries(db: Database, parsed: grammar.Query) -> tuple[words.WordQuery, list[words.WordQuery]]:
    """The words the positive ``text:`` parts look for (all of them: one query) and each negative
    one's, with their stored variants one letter off (:func:`indexer.search.words.expand`)."""
    wanted = words.combine([words.parse(p.text) for p in parsed.positive if p.words])
    unwanted = [words.parse(p.text) for p in parsed.negative if p.words]
    return (words.expand(db, wanted) if wanted else wanted), [words.expand(db, q) for q in unwanted]


def without_words(searcher: OperatorSearch, unwanted: list[words.WordQuery], ids: list[int]) -> set[int]:
    """Those of ``ids`` whose text holds a negative ``text:`` part's words (one statement a part)."""
    out: set[int] = set()
    for q in unwanted:
        out |= set(words.find(searcher.db, q, searcher.version_id(), among=ids, limit=max(len(ids), 1)))
    return out


def by_words(searcher: OperatorSearch, parsed: grammar.Query, wanted: words.WordQuery,
             unwanted: list[words.WordQuery], k: int, offset: int, min_score: float | None,
             filters: Filters | None, sort: str) -> Results:
    """A query whose positive parts are all ``text:`` parts: the photos whose text holds all their
    words (every one matches), best text score first (or by date), without those a negative part
    removes (a text: by its calibrated cutoff, its tags and verdicts, as above; a ``text:`` part
    by its words)."""
    limit = max(2 * (offset + k + 1), SORT_POOL if sort != "relevance" else 0)
    found = words.find(searcher.db, wanted, searcher.version_id(), filters, limit=limit)
    ids = np.array(sorted(found), np.int64)
    negative = tuple(p for p in parsed.negative if not p.words)
    left_out = without_words(searcher, unwanted, ids.tolist())
    cutoffs: dict[str, Cutoff] = {}
    if negative and len(ids):
        queries = {p.text: searcher.embed_query(p.text) for p in negative}
        texts = list(queries)
        scored, scores = score_texts(searcher.model, searcher.db, searcher.version_id(), ids,
                                     torch.cat([queries[t] for t in texts]))
        cutoffs = {t: searcher.cutoff(t, queries[t]) for t in texts}
        left_out |= excluded(searcher, scored, negative, scores, {t: n for n, t in enumerate(texts)}, cutoffs)
    ranked = [(i, sc) for i, sc in found.items() if i not in left_out and (min_score is None or sc >= min_score)]
    ranked, others = stacks(searcher.db, ranked)
    ranked, similar = searcher.fold(ranked)
    if sort != "relevance":
        ranked = searcher.dated(ranked, sort, None)
    page = ranked[offset:offset + k]
    shots = {i: Shot(None, others[i]) for i, _ in page if i in others}
    hits = blend.mark(searcher.db, page_hits(searcher.db, page, None, set(), shots, similar),
                      blend.Found(wanted, frozenset(found)))
    return Results(parsed.text, hits, offset, len(ranked) > offset + k, None, filters or Filters(),
                   model_info(searcher.model, None), sort, parts_json(parsed, cutoffs))


def parts_json(parsed: grammar.Query, cutoffs: dict[str, Cutoff]) -> list[dict]:
    """The parts of a query as results show them, each text's cutoff with it (None: a ``text:`` part)."""
    def value(p: grammar.Part) -> float | None:
        cut = None if p.words else cutoffs.get(p.text)
        return None if cut is None or cut.value is None else round(cut.value, 6)

    return [{**p.to_json(), "cutoff": value(p)} for p in parsed.parts]


def verdicts(searcher: OperatorSearch, positive: tuple[grammar.Part, ...], filters: Filters | None
             ) -> tuple[dict[str, set[int]], set[int]]:
    """Per positive text the photos confirmed for it that pass ``filters``, and the photos
    rejected for any positive text (:func:`indexer.search.feedback.for_texts`)."""
    confirmed_for, rejected = feedback.for_texts(searcher.db, [p.text for p in positive])
    confirmed = set().union(*confirmed_for.values())
    if confirmed and filters:
        passing = flt.keep(searcher.db, filters, searcher.version_id(), sorted(confirmed))
        confirmed_for = {t: ids & passing for t, ids in confirmed_for.items()}
    return confirmed_for, rejected


def matching(ids: np.ndarray, pos_scores: np.ndarray, positive: tuple[grammar.Part, ...],
             cutoffs: dict[str, Cutoff], confirmed_for: dict[str, set[int]]) -> set[int]:
    """Those of ``ids`` that match every positive part: its calibrated cutoff, or a person
    confirmed its text on them."""
    return {int(i) for n, i in enumerate(ids)
            if all(int(i) in confirmed_for[p.text] or cutoffs[p.text].matches(float(pos_scores[n, m]))
                   for m, p in enumerate(positive))}


def excluded(searcher: OperatorSearch, ids: np.ndarray, negative: tuple[grammar.Part, ...], scores: np.ndarray,
             column: dict[str, int], cutoffs: dict[str, Cutoff]) -> set[int]:
    """Those of ``ids`` that a negative part removes: its text matches them (calibrated
    cutoff), they have it as a keyword (a matching tag of it or of a keyword under it, as the
    ``tag`` filter decides: :func:`indexer.search.keywords.has_keyword`), or a person confirmed
    it on them; never a photo on which a person rejected it."""
    out: set[int] = set()
    for part in negative:
        cut = cutoffs[part.text]
        hit = {int(i) for i, sc in zip(ids, scores[:, column[part.text]]) if cut.matches(float(sc))}
        hit |= flt.tagged_with(searcher.db, part.text, searcher.version_id(), ids.tolist())
        confirmed, rejected = feedback.for_label(searcher.db, part.text)
        out |= (hit | confirmed) - rejected
    return out

