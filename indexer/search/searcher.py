"""Text -> images search: embed the query through the model's label encoder, then the index.

Search does not depend on the stored label vocabulary: any text works, including labels
no one trained on. Results come back as :class:`Hit` rows joined with SQL, so an image that
was removed or failed since it was indexed never shows up.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from PIL.Image import Image as PILImage
from sqlalchemy import select

from core.db import Database
from core.errors import TagscopeError
from core.schema import ModelVersion, collection_model_version
from core.settings import Settings
from indexer import kinds, store
from indexer.search import blend, browse, feedback, filtered, follow
from indexer.search import filters as flt
from indexer.search import parts as query_parts
from indexer.search import query as grammar
from indexer.search.browse import check_sort
from indexer.search.checks import (
    MAX_POOL,
    RERANK_POOL,
    SORT_POOL,
    check_offset,
    check_query,
)
from indexer.search.filters import Filters
from indexer.search.hits import page_hits
from indexer.search.model_choice import resolve_model
from indexer.search.relevance import TOP_N, Calibrator, Cutoff
from indexer.search.results import Hit, Results, model_info
from indexer.search.scoring import rerank
from indexer.search.shots import Shot, as_shots
from indexer.search.shots import stacks as shots_stacks
from indexer.search.similar import fold_similar, threshold_for
from indexer.search.text_batch import TextBatcher
from indexer.store import StoreVersion
from indexer.vector_index import IndexDamaged, VectorIndex
from migrations import get_database
from mkt.tagmodel import TagModel

QUERY_CACHE = 4096  # query texts whose embeddings a searcher keeps (~2 KiB each at 512-d)


class Searcher:
    """Holds the model and the index of its version; reloads the index when it changes on disk.
    Unless a model is set (settings or ``model``), it serves the collection's active version and
    follows a switch (an upgrade that completed, ``tagscope models use``) at the next query. A
    server's (``keep_current``) follows the index change log in the background; any other brings
    this machine's copy up to date before it searches (:func:`follow.catch_up`)."""

    def __init__(self, settings: Settings, model: TagModel | None = None, keep_current: bool = False) -> None:
        self.settings = settings
        # a server keeps its own copy of the index current (:mod:`indexer.search.follow`)
        self._follower = follow.Follower(settings) if keep_current else None
        self._model = model
        self._follows_active = model is None and settings.model is None
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()
        self._version_row: int | None = None
        self._queries: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._batcher = TextBatcher(max_batch=settings.text_batch)  # concurrent new texts share the text tower
        self._cutoffs: OrderedDict[tuple, Cutoff] = OrderedDict()
        self._calibrator: Calibrator | None = None
        self.notice: str | None = None  # why the last search was answered from the store, if it was
        # any other reader catches up before it searches (:func:`follow.catch_up`): when it did, and
        # why the store answers while this machine's copy is built, if it does
        self._caught_up_at = -float("inf")
        self._building: str | None = None

    def follow_active_version(self) -> None:
        """Drop the loaded model and index when the collection's active version changed."""
        if not self._follows_active or self._model is None:
            return
        with self.db.session() as s:
            current = collection_model_version(s)
        with self._lock:
            if current is not None and self._model is not None and self._model.version != current.version:
                self._model, self._index, self._version_row = None, None, None

    @property
    def db(self) -> Database:
        return get_database(self.settings.db_url)

    @property
    def model(self) -> TagModel:
        """The model that embeds queries (loaded on first use, or at start-up through this)."""
        with self._lock:
            if self._model is None:
                self._model = self._resolve_model()
            return self._model

    def _resolve_model(self) -> TagModel:
        return resolve_model(self.settings, self.db)

    def index(self) -> VectorIndex:
        model = self.model
        version = StoreVersion(self._version_id(), model.version, model.embed_dim)  # not under the lock
        if self._follower is not None and version.id is not None:
            self._follower.poke(self.db, version)
        elif version.id is not None and (self._index is None or
                                         time.monotonic() - self._caught_up_at >= follow.SYNC_EVERY_S):
            self._building = follow.catch_up(self.settings, self.db, version)
            self._caught_up_at = time.monotonic()
        with self._lock:
            try:
                if self._index is None:
                    self._index = VectorIndex.open(self.settings.index_dir, model.version, model.embed_dim)
                elif self._index.is_stale():
                    self._index.reload()
            except IndexDamaged as exc:  # set aside and rebuilt: answered from the store meanwhile
                self._index = follow.damaged(self.settings, self.db, version, exc, self._follower)
            return self._index

    def embed_query(self, text: str) -> torch.Tensor:
        """The query's embedding, from a per-process LRU cache of recent texts (per model version);
        texts it misses go through the text tower in batches with other threads' (:mod:`.text_batch`)."""
        model = self.model
        key = (model.version, text)
        with self._lock:
            cached = self._queries.get(key)
            if cached is not None:
                self._queries.move_to_end(key)
                return cached
        emb = self._batcher.embed(model, text)
        with self._lock:
            self._queries[key] = emb
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return emb

    def search(self, text: str, k: int = 20, min_score: float | None = None) -> list[Hit]:
        """The ``k`` best images for ``text``; with ``min_score``, only those scoring at least that.
        Each hit says whether it matches (:mod:`indexer.search.relevance`). See :meth:`find`."""
        return self.find(text, k=k, min_score=min_score).hits

    def find(self, text: str | None = None, *, image: torch.Tensor | None = None, k: int = 20, offset: int = 0,
             min_score: float | None = None, filters: Filters | None = None, exclude: int | None = None,
             sort: str | None = None) -> Results:
        """One page of results for a text (``text``, in the grammar of :mod:`indexer.search.query`)
        or an image (``image``: its normalised global embedding [1, D]), or, with neither, the
        photos passing ``filters`` by date (:func:`browse`): ranks ``offset`` to ``offset + k``.

        Text is scored by the model's own score, as tags are: the index proposes candidates by the
        global embedding and, when its ranking is not the model's (an approximate index, or an MKT
        model whose score also has a local stream), :func:`rerank` orders a pool of candidates by
        the model's score from the stored embeddings. Images are ranked by the cosine of global
        embeddings. A text query also gets its calibrated cutoff and each hit a ``match`` flag.
        ``sort`` ``newest`` / ``oldest`` orders a text query's matches (among its best
        ``SORT_POOL``) by when they were taken, the nearest others after them by score; an image
        query's best ``SORT_POOL`` by date."""
        if text is None and image is None:
            return self.browse(filters or Filters(), k=k, offset=offset, sort=check_sort(sort, "newest"))
        sort = check_sort(sort)
        parsed = None
        if text is not None:
            text, k = check_query(text, k)
            parsed = grammar.parse(text)
        offset = check_offset(offset, k)
        self.follow_active_version()
        if parsed is not None and not parsed.simple:
            return query_parts.find(self, parsed, k, offset, min_score, filters, sort)
        words = parsed.parts[0].text if parsed is not None else None
        query = self.embed_query(words) if words is not None else image.float().reshape(1, -1).cpu()
        # one more: is there a next page? Twice as many: stacks come back once
        depth = 2 * (offset + k + 1 + (exclude is not None))
        if sort != "relevance":
            depth = max(depth, SORT_POOL)
        best = None  # the collection's best TOP_N, which calibrate the cutoff
        if filters:
            ids, scores = self._filtered(query, depth, filters, by_model=words is not None)
        else:
            by_model = words is not None
            ids, scores = self._ranked(query, max(depth, TOP_N) if by_model else depth, by_model=by_model)
            best = ids[:TOP_N], scores[:TOP_N]
        ranked = [(int(i), float(s)) for i, s in zip(ids, scores) if i >= 0 and i != exclude]
        cutoff = self.cutoff(words, query, best) if words is not None else None
        found = blend.Found()
        if words is not None:  # photos whose text holds the query's words match, raised (:mod:`.blend`)
            ranked, found = blend.raise_found(self.db, self.model, self._version_id(), words, query, ranked,
                                              cutoff, filters, depth)
        ranked, shots = as_shots(self.db, self.model, self._version_id(), query, ranked, by_model=words is not None)
        ranked = [(i, s) for i, s in ranked if min_score is None or s >= min_score]
        confirmed: set[int] = set()
        if words is not None:
            ranked, confirmed = self._curated(words, query, ranked, filters)
        ranked, similar = self.fold(ranked)
        if sort != "relevance":
            ranked = self.dated(ranked, sort, None if cutoff is None else
                                 (lambda i, sc: i in confirmed or i in found.ids or cutoff.matches(sc)))
        page = ranked[offset:offset + k]
        hits = blend.mark(self.db, page_hits(self.db, page, cutoff, confirmed, shots, similar), found)
        return Results(text, hits, offset, len(ranked) > offset + k,
                       cutoff, filters or Filters(), model_info(self.model, words), sort)

    def browse(self, filters: Filters, k: int = 20, offset: int = 0, sort: str = "newest") -> Results:
        """The photos passing ``filters`` by date, no query: ranks ``offset`` to ``offset + k``."""
        sort = check_sort(sort, "newest")
        if sort == "relevance":
            raise TagscopeError("sort by relevance needs a query: type a text, or sort by newest or oldest")
        offset = check_offset(offset, k)
        self.follow_active_version()
        # stacks come back once: read a few more than the page holds
        ids = browse.listing(self.db, filters, self._version_id(), sort, offset, 2 * (k + 1))
        ranked, others = shots_stacks(self.db, [(i, 0.0) for i in ids])
        page = ranked[:k]
        shots = {i: Shot(None, others[i]) for i, _ in page if i in others}
        hits = [replace(h, score=None) for h in page_hits(self.db, page, None, set(), shots)]
        return Results(None, hits, offset, len(ranked) > k, None, filters, model_info(self.model, None), sort)

    def fold(self, ranked: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], dict[int, list[int]]]:
        """``ranked`` with each group of near-duplicates once, as its best-ranked photo, and the
        ids folded into each (:func:`indexer.search.similar.fold_similar`; the model's threshold)."""
        if len(ranked) < 2:
            return ranked, {}
        found, vectors = store.get(self.db, self._version_id(), [i for i, _ in ranked], self.model.embed_dim)
        row = {int(i): n for n, i in enumerate(found)}
        ranked = [(i, sc) for i, sc in ranked if i in row]
        vectors = vectors[[row[i] for i, _ in ranked]].astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return fold_similar(ranked, vectors, threshold_for(self.model.spec, self.settings.duplicate_threshold))

    def dated(self, ranked: list[tuple[int, float]], sort: str,
              matched: Callable[[int, float], bool] | None) -> list[tuple[int, float]]:
        """``ranked`` with its matches (``matched(id, score)``; all of them when None) by date
        (``sort``: ``newest`` or ``oldest``), then the others by score."""
        first = [r for r in ranked if matched is None or matched(*r)]
        rest = [r for r in ranked if not (matched is None or matched(*r))]
        score = dict(first)
        return [(i, score[i]) for i in browse.by_date(self.db, list(score), sort)] + rest

    def _curated(self, text: str, query: torch.Tensor, ranked: list[tuple[int, float]], filters: Filters | None
                 ) -> tuple[list[tuple[int, float]], set[int]]:
        """People's verdicts on the label ``text``: photos confirmed for it first (by score), photos
        rejected for it never (:func:`indexer.search.feedback.curate`, as for every query)."""
        by_text, rejected = feedback.for_texts(self.db, [text])
        confirmed = by_text[text]
        if not confirmed and not rejected:
            return ranked, set()
        if confirmed and filters:
            confirmed &= flt.keep(self.db, filters, self._version_id(), sorted(confirmed))
        ids, scores = rerank(self.model, self.db, self._version_id(), np.array(sorted(confirmed), np.int64), query)
        first = [(int(i), float(s)) for i, s in zip(ids, scores)]
        return feedback.curate(ranked, first, rejected), {i for i, _ in first}

    def candidates(self, query: torch.Tensor, n: int, filters: Filters | None = None, by_model: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` (ids, scores) for a query embedding [1, D] among the photos passing
        ``filters`` (all when None), best first: by the model's own score when ``by_model`` (a
        text), else by the cosine of global embeddings (a photo)."""
        if filters:
            return self._filtered(query, n, filters, by_model)
        return self._ranked(query, n, by_model)

    def _ranked(self, query: torch.Tensor, n: int, by_model: bool) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` (ids, scores) of the collection, best first (from the store itself while
        a server builds its first copy of the index)."""
        index = self.index()
        self.notice = self._building or follow.from_store(self.settings, index, self._follower is not None)
        if self.notice is not None:
            ids, _ = follow.exact_top(self.db, self._version_id(), self.model.embed_dim, query,
                                      max(n, RERANK_POOL))
            ids, scores = rerank(self.model, self.db, self._version_id(), ids, query, by_model)
            return ids[:n], scores[:n]
        exact = index.exact and (self.model.local_top_k <= 0 or not by_model)
        pool = max(4 * n, n * kinds.SPECS[index.kind].oversample, RERANK_POOL)  # ivfpq needs 20 per result
        scores, ids = index.search(query.numpy(), n if exact else min(pool, MAX_POOL))
        ids, scores = ids[0], scores[0]
        if not exact:
            ids, scores = rerank(self.model, self.db, self._version_id(), ids[ids >= 0], query, by_model)
        return ids[:n], scores[:n]

    def _filtered(self, query: torch.Tensor, n: int, filters: Filters, by_model: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_ranked` among the photos passing ``filters`` (:mod:`indexer.search.filtered`):
        through this machine's index copy, or exactly from the store while it has none."""
        index = self.index()
        self.notice = self._building or follow.from_store(self.settings, index, self._follower is not None)
        if self.notice is not None:
            return filtered.from_store(self.db, self.model, self._version_id(), query, n, filters, by_model)
        return filtered.through_index(index, self.db, self.model, self._version_id(), query, n, filters, by_model)

    def cutoff(self, text: str, query: torch.Tensor, best: tuple[np.ndarray, np.ndarray] | None = None) -> Cutoff:
        """The calibrated cutoff of a text query (cached per model version, text and index state);
        ``best``: its best (ids, scores) over the collection when the caller has them."""
        index, model = self.index(), self.model
        key = (model.version, text, index.loaded_mtime, len(index))
        with self._lock:
            cached = self._cutoffs.get(key)
            calibrator = self._calibrator
        if cached is not None:
            return cached
        if calibrator is None or calibrator.model is not model:
            calibrator = Calibrator(model, self.db, self._version_id())
            with self._lock:
                self._calibrator = calibrator
        ids, scores = best if best is not None else self._ranked(query, TOP_N, by_model=True)
        cutoff = calibrator.cutoff(query, ids, scores)
        with self._lock:
            self._cutoffs[key] = cutoff
            while len(self._cutoffs) > QUERY_CACHE:
                self._cutoffs.popitem(last=False)
        return cutoff

    def stored_embedding(self, image_id: int) -> torch.Tensor | None:
        """The stored global embedding [1, D] of a tagged image (a "more like this" query), or None."""
        self.follow_active_version()
        _, vectors = store.get(self.db, self._version_id(), [image_id], self.model.embed_dim)
        return torch.from_numpy(vectors[:1]) if len(vectors) else None

    def embed_photo(self, photo: PILImage) -> torch.Tensor:
        """The global embedding [1, D] of a decoded photo (an uploaded query; nothing is stored)."""
        model = self.model
        with torch.inference_mode():
            pixels = model.preprocess(photo).unsqueeze(0).to(model.device)
            return model.encode_images(pixels, with_patches=False).global_.float().cpu()

    def version_id(self) -> int:
        """The SQL id of the served model version."""
        return self._version_id()

    def _version_id(self) -> int:
        if self._version_row is None:
            with self.db.session() as s:
                self._version_row = s.scalar(select(ModelVersion.id).where(ModelVersion.version == self.model.version))
        return self._version_row
