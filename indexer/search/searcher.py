"""Text -> images search: embed the query through the model's label encoder, then the index.

Search does not depend on the stored label vocabulary: any text works, including labels
no one trained on. Results come back as :class:`Hit` rows joined with SQL, so an image that
was removed or failed since it was indexed never shows up.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL.Image import Image as PILImage
from sqlalchemy import select

from core.db import TAGGED, Database, Image, ModelVersion, collection_model_version, get_database, tagged_versions
from core.errors import TagscopeError
from core.settings import Settings
from indexer import kinds, store
from indexer.search import feedback
from indexer.search import filters as flt
from indexer.search.filters import Filters
from indexer.search.relevance import TOP_N, Calibrator, Cutoff
from indexer.search.shots import Shot, as_shots
from indexer.vector_index import VectorIndex
from mkt.factory import get_model
from mkt.tagmodel import ImageEmbeddings, TagModel

MAX_K = 1000
MAX_DEPTH = 2000  # pages reach this deep into the ranking
FILTER_EXACT = 20_000  # a filter passing at most this many photos is searched exactly over them
FILTER_EXACT_PATCHES = 2_000  # the same for MKT text queries (patch features: ~200 KiB a photo at ViT-B/16)
RERANK_POOL = 200  # candidates re-ranked by the model's own score (MKT models, approximate indexes)
MAX_POOL = 4000
MAX_QUERY_CHARS = 300
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn"}  # controls, format (zero-width...), private, surrogates, unassigned
QUERY_CACHE = 4096  # query texts whose embeddings a searcher keeps (~2 KiB each at 512-d)


@dataclass(frozen=True)
class Hit:
    """One result: ``match`` says whether it passes the query's calibrated cutoff (None for image
    queries, which have none); ``mtime`` is the file's modification time (seconds since 1970);
    ``confirmed``: a person confirmed the query's label on this photo (it comes first, and matches);
    ``frame_s``: for a video, the time of its best frame; ``stack``: the other files of its shot
    (:mod:`indexer.search.shots`)."""

    image_id: int
    path: str
    score: float
    match: bool | None = None
    mtime: float | None = None
    confirmed: bool = False
    frame_s: float | None = None
    stack: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Results:
    """One page of results: ranks ``offset`` to ``offset + len(hits)``; ``more`` when a next page exists."""

    query: str | None
    hits: list[Hit]
    offset: int
    more: bool
    cutoff: Cutoff | None
    filters: Filters
    model: dict[str, Any] | None = None  # which model answered (:func:`model_info`)

    def to_json(self) -> dict[str, Any]:
        calibration = self.cutoff.to_json() if self.cutoff is not None else {"cutoff": None, "calibration": None}
        return {"query": self.query, "offset": self.offset, "more": self.more, **calibration,
                "filters": self.filters.to_json(), "model": self.model,
                "matches": sum(bool(h.match) for h in self.hits), "results": [h.to_json() for h in self.hits]}


def model_info(model: TagModel, text: str | None) -> dict[str, Any]:
    """Which model answers a query: its spec, version and kind, and whether the query's text was
    a label it trained on (``seen``), held out of its training, new to it, or None (not a text
    query, or a model not trained on labels)."""
    return {"spec": model.spec, "version": model.version, "kind": model.describe(),
            "label": model.label_training(text) if text is not None else None}


def parse_min_score(value: str | float | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise TagscopeError(f"min_score must be a number between -1 and 1, got {value!r}") from None
    if not -1.0 <= score <= 1.0:
        raise TagscopeError(f"min_score must be between -1 and 1 (scores are cosine similarities), got {score}")
    return score


def check_offset(offset: int | str | None, k: int) -> int:
    """A page's first rank: 0 up to ``MAX_DEPTH - k`` (search pages through the best ``MAX_DEPTH``)."""
    try:
        offset = int(offset or 0)
    except (TypeError, ValueError):
        raise TagscopeError(f"offset must be a whole number, got {offset!r}") from None
    if not 0 <= offset <= MAX_DEPTH - k:
        raise TagscopeError(f"offset must be between 0 and {MAX_DEPTH - k} (search pages through the best "
                            f"{MAX_DEPTH} results; narrow the query or add a filter to see others), got {offset}")
    return offset


def check_query(text: str | None, k: int | str | None) -> tuple[str, int]:
    """Validate a query; raises :class:`TagscopeError` with what to change. Invisible characters
    (controls, zero-width and format characters) are dropped; NUL and undecodable bytes (U+FFFD
    from a bad %-escape) are refused."""
    text = text or ""
    if "\x00" in text or "\ufffd" in text:
        raise TagscopeError("the query holds a NUL or bytes that are not UTF-8: type plain text")
    text = " ".join("".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE).split())
    if not text:
        raise TagscopeError("empty query: type a label or a description, e.g. \"red bicycle\"")
    if len(text) > MAX_QUERY_CHARS:
        raise TagscopeError(f"query too long ({len(text)} characters): keep it under {MAX_QUERY_CHARS}")
    try:
        k = int(k if k is not None else 20)
    except (TypeError, ValueError):
        raise TagscopeError(f"k must be a whole number between 1 and {MAX_K}, got {k!r}") from None
    if not 1 <= k <= MAX_K:
        raise TagscopeError(f"k must be between 1 and {MAX_K}, got {k}")
    return text, k


class Searcher:
    """Holds the model and the index of its version; reloads the index when it changes on disk.
    Unless a model is set (settings or ``model``), it serves the collection's active version and
    follows a switch (an upgrade that completed, ``tagscope models use``) at the next query."""

    def __init__(self, settings: Settings, model: TagModel | None = None) -> None:
        self.settings = settings
        self._model = model
        self._follows_active = model is None and settings.model is None
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()
        self._version_row: int | None = None
        self._queries: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._cutoffs: OrderedDict[tuple, Cutoff] = OrderedDict()
        self._calibrator: Calibrator | None = None

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
        """The model set in the settings, or else the one the collection was tagged with. A model
        that is set must be one the collection is tagged with: its version id decides, not how
        its spec is spelled."""
        with self.db.session() as s:
            current = collection_model_version(s)
            tagged = tagged_versions(s)
            current_spec = current.spec if current is not None else None
        device = self.settings.resolved_device()
        if self.settings.model is None:
            return get_model(current_spec or self.settings.tagging_model, device)
        model = get_model(self.settings.model, device)
        if tagged and model.version not in tagged:
            raise TagscopeError(f"the collection is tagged with {current_spec}, not {self.settings.model} "
                                f"(version {model.version}): pass --model {current_spec}, leave the model unset, "
                                "or re-tag with this model")
        return model

    def index(self) -> VectorIndex:
        model = self.model
        with self._lock:
            if self._index is None:
                self._index = VectorIndex.open(self.settings.index_dir, model.version, model.embed_dim)
            elif self._index.is_stale():
                self._index.reload()
            return self._index

    def embed_query(self, text: str) -> torch.Tensor:
        """The query's embedding, from a per-process LRU cache of recent texts (per model version)."""
        model = self.model
        key = (model.version, text)
        with self._lock:
            cached = self._queries.get(key)
            if cached is not None:
                self._queries.move_to_end(key)
                return cached
        with torch.inference_mode():
            emb = model.encode_labels([text]).float().cpu()
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
             ) -> Results:
        """One page of results for a text (``text``) or an image (``image``: its normalised global
        embedding [1, D]): ranks ``offset`` to ``offset + k`` of the best images, passing ``filters``.

        Text is scored by the model's own score, as tags are: the index proposes candidates by the
        global embedding and, when its ranking is not the model's (an approximate index, or an MKT
        model whose score also has a local stream), :func:`rerank` orders a pool of candidates by
        the model's score from the stored embeddings. Images are ranked by the cosine of global
        embeddings. A text query also gets its calibrated cutoff and each hit a ``match`` flag."""
        if text is not None:
            text, k = check_query(text, k)
        offset = check_offset(offset, k)
        self.follow_active_version()
        query = self.embed_query(text) if text is not None else image.float().reshape(1, -1).cpu()
        # one more: is there a next page? Twice as many: stacks come back once
        depth = 2 * (offset + k + 1 + (exclude is not None))
        best = None  # the collection's best TOP_N, which calibrate the cutoff
        if filters:
            ids, scores = self._filtered(query, depth, filters, by_model=text is not None)
        else:
            by_model = text is not None
            ids, scores = self._ranked(query, max(depth, TOP_N) if by_model else depth, by_model=by_model)
            best = ids[:TOP_N], scores[:TOP_N]
        ranked = [(int(i), float(s)) for i, s in zip(ids, scores) if i >= 0 and i != exclude]
        ranked, shots = as_shots(self.db, self.model, self._version_id(), query, ranked, by_model=text is not None)
        ranked = [(i, s) for i, s in ranked if min_score is None or s >= min_score]
        cutoff = self.cutoff(text, query, best) if text is not None else None
        confirmed: set[int] = set()
        if text is not None:
            ranked, confirmed = self._curated(text, query, ranked, filters)
        page = ranked[offset:offset + k]
        return Results(text, self._hits(page, cutoff, confirmed, shots), offset, len(ranked) > offset + k, cutoff,
                       filters or Filters(), model_info(self.model, text))

    def _curated(self, text: str, query: torch.Tensor, ranked: list[tuple[int, float]], filters: Filters | None
                 ) -> tuple[list[tuple[int, float]], set[int]]:
        """People's verdicts on the label ``text``: photos confirmed for it first (by score), photos
        rejected for it never (:mod:`indexer.search.feedback`)."""
        confirmed, rejected = feedback.for_label(self.db, text)
        if not confirmed and not rejected:
            return ranked, set()
        if confirmed and filters:
            confirmed &= flt.keep(self.db, filters, self._version_id(), sorted(confirmed))
        ids, scores = rerank(self.model, self.db, self._version_id(), np.array(sorted(confirmed), np.int64), query)
        first = [(int(i), float(s)) for i, s in zip(ids, scores)]
        rest = [(i, s) for i, s in ranked if i not in confirmed and i not in rejected]
        return first + rest, {i for i, _ in first}

    def _ranked(self, query: torch.Tensor, n: int, by_model: bool) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` (ids, scores) of the collection, best first."""
        index = self.index()
        exact = index.exact and (self.model.local_top_k <= 0 or not by_model)
        pool = max(4 * n, n * kinds.SPECS[index.kind].oversample, RERANK_POOL)  # ivfpq needs 20 per result
        scores, ids = index.search(query.numpy(), n if exact else min(pool, MAX_POOL))
        ids, scores = ids[0], scores[0]
        if not exact:
            ids, scores = rerank(self.model, self.db, self._version_id(), ids[ids >= 0], query, by_model)
        return ids[:n], scores[:n]

    def _filtered(self, query: torch.Tensor, n: int, filters: Filters, by_model: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_ranked` among the photos passing ``filters``: exactly over them when at most
        ``FILTER_EXACT`` pass, else over the index's best ``MAX_POOL`` candidates (fewer than ``n``
        results then when the filter keeps few of those)."""
        version_id = self._version_id()
        patched = by_model and self.model.local_top_k > 0  # scoring reads each photo's patch features
        allowed = flt.allowed_ids(self.db, filters, version_id, FILTER_EXACT_PATCHES if patched else FILTER_EXACT)
        if allowed is not None:
            ids, scores = rerank(self.model, self.db, version_id, allowed, query, by_model)
            return ids[:n], scores[:n]
        ids, scores = self._ranked(query, min(MAX_POOL, max(8 * n, RERANK_POOL)), by_model)
        passing = flt.keep(self.db, filters, version_id, ids.tolist())
        mask = np.fromiter((int(i) in passing for i in ids), bool, len(ids))
        return ids[mask][:n], scores[mask][:n]

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

    def _hits(self, ranked: list[tuple[int, float]], cutoff: Cutoff | None, confirmed: set[int] = frozenset(),
              shots: dict[int, Shot] | None = None) -> list[Hit]:
        if not ranked:
            return []
        with self.db.session() as s:
            rows = {r.id: r for r in s.execute(select(Image.id, Image.path, Image.mtime)
                                               .where(Image.id.in_([i for i, _ in ranked]), Image.status == TAGGED))}
        shots = shots or {}
        return [Hit(i, rows[i].path, sc, True if i in confirmed else None if cutoff is None else cutoff.matches(sc),
                    rows[i].mtime, i in confirmed, *_shot(shots.get(i))) for i, sc in ranked if i in rows]

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


def _shot(shot: Shot | None) -> tuple[float | None, tuple[str, ...]]:
    return (None, ()) if shot is None else (shot.frame_s, tuple(shot.stack))


def rerank(model: TagModel, db: Database, model_version_id: int, ids: np.ndarray, query: torch.Tensor,
           by_model: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of the candidates ``ids`` by the model's own score (:meth:`TagModel.score`:
    the two-stream score for MKT models; with ``by_model`` False the cosine of global embeddings,
    for image queries) from their stored embeddings, best first. Candidates without a stored
    embedding (no longer tagged) drop out."""
    found, vectors, patches = store.get_with_patches(db, model_version_id, ids.tolist(), model.embed_dim,
                                                     patches=by_model and model.local_top_k > 0)
    if not len(found):
        return found, np.zeros(0, np.float32)
    emb = ImageEmbeddings(torch.from_numpy(vectors).to(model.device),
                          None if patches is None else torch.from_numpy(patches).to(model.device))
    with torch.inference_mode():
        scores = model.score(emb, query.to(model.device)).float().cpu().numpy()[:, 0]
    order = np.argsort(-scores, kind="stable")
    return found[order], scores[order]
