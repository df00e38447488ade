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
from sqlalchemy import select

from core.db import TAGGED, Database, Image, ModelVersion, collection_model_version, get_database, tagged_versions
from core.errors import TagscopeError
from core.settings import Settings
from indexer import ann, store
from indexer.vector_index import VectorIndex
from mkt.factory import get_model
from mkt.tagmodel import ImageEmbeddings, TagModel

MAX_K = 1000
RERANK_POOL = 200  # candidates re-ranked by the model's own score (MKT models, approximate indexes)
MAX_POOL = 4000
MAX_QUERY_CHARS = 300
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn"}  # controls, format (zero-width...), private, surrogates, unassigned
QUERY_CACHE = 4096  # query texts whose embeddings a searcher keeps (~2 KiB each at 512-d)


@dataclass(frozen=True)
class Hit:
    image_id: int
    path: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
        """The ``k`` best images for ``text``; with ``min_score``, only those scoring at least that
        (a relevance cutoff: fewer than ``k`` when fewer images match).

        The index proposes candidates by the global embedding; when its ranking is not the model's
        own (an approximate index, or a model whose score also has a local stream, as MKT's),
        :func:`rerank` orders a pool of candidates by the model's score from the stored embeddings
        (the score tags store), so search and tags agree."""
        text, k = check_query(text, k)
        self.follow_active_version()
        index = self.index()
        query = self.embed_query(text)
        exact = index.exact and self.model.local_top_k <= 0
        pool = max(4 * k, k * ann.SPECS[index.kind].oversample, RERANK_POOL)  # ivfpq needs 20 per result
        scores, ids = index.search(query.numpy(), k if exact else min(pool, MAX_POOL))
        ids, scores = ids[0], scores[0]
        if not exact:
            ids, scores = rerank(self.model, self.db, self._version_id(), ids[ids >= 0], query)
        ranked = [(int(i), float(s)) for i, s in zip(ids[:k], scores[:k])
                  if i >= 0 and (min_score is None or s >= min_score)]
        if not ranked:
            return []
        with self.db.session() as s:
            paths = dict(s.execute(select(Image.id, Image.path)
                                   .where(Image.id.in_([i for i, _ in ranked]), Image.status == TAGGED)).all())
        return [Hit(i, paths[i], sc) for i, sc in ranked if i in paths]

    def _version_id(self) -> int:
        if self._version_row is None:
            with self.db.session() as s:
                self._version_row = s.scalar(select(ModelVersion.id).where(ModelVersion.version == self.model.version))
        return self._version_row


def rerank(model: TagModel, db: Database, model_version_id: int, ids: np.ndarray, query: torch.Tensor
           ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores) of the candidates ``ids`` by the model's own score (:meth:`TagModel.score`:
    the two-stream score for MKT models) from their stored embeddings, best first. Candidates
    without a stored embedding (no longer tagged) drop out."""
    found, vectors, patches = store.get_with_patches(db, model_version_id, ids.tolist(), model.embed_dim,
                                                     patches=model.local_top_k > 0)
    if not len(found):
        return found, np.zeros(0, np.float32)
    emb = ImageEmbeddings(torch.from_numpy(vectors).to(model.device),
                          None if patches is None else torch.from_numpy(patches).to(model.device))
    with torch.inference_mode():
        scores = model.score(emb, query.to(model.device)).float().cpu().numpy()[:, 0]
    order = np.argsort(-scores, kind="stable")
    return found[order], scores[order]
