"""What a search returns: :class:`Hit` rows in a :class:`Results` page, and which model answered."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from indexer.search.filters import Filters
from indexer.search.relevance import Cutoff
from mkt.tagmodel import TagModel


@dataclass(frozen=True)
class Hit:
    """One result: ``match`` says whether it passes the query's calibrated cutoff (None for image
    queries, which have none); ``mtime`` is the file's modification time (seconds since 1970);
    ``confirmed``: a person confirmed the query's label (with operators: one of its texts to look
    for) on this photo: it comes first, and matches (that part);
    ``frame_s``: for a video, the time of its best frame; ``stack``: the other files of its shot
    (:mod:`indexer.search.shots`); ``taken``: when it was taken (the camera's clock, ISO 8601, with
    its UTC offset when known: ``+00:00`` for a video dated by its UTC ``creation_time`` alone);
    ``score`` is None in a listing without a query (:mod:`indexer.search.browse`); ``similar``:
    the near-duplicates of this photo folded into it (:mod:`indexer.search.similar`); ``words``:
    the words of the photo's text (what OCR read in it) that the query found, as read
    (:mod:`indexer.search.blend`)."""

    image_id: int
    path: str
    score: float | None
    match: bool | None = None
    mtime: float | None = None
    confirmed: bool = False
    frame_s: float | None = None
    stack: tuple[str, ...] = ()
    taken: str | None = None
    similar: tuple[int, ...] = ()
    words: tuple[str, ...] = ()

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
    sort: str = "relevance"
    parts: list[dict[str, Any]] | None = None  # a query with operators: its parts (:mod:`indexer.search.query`)

    def to_json(self) -> dict[str, Any]:
        calibration = self.cutoff.to_json() if self.cutoff is not None else {"cutoff": None, "calibration": None}
        return {"query": self.query, "offset": self.offset, "more": self.more, **calibration,
                "filters": self.filters.to_json(), "sort": self.sort, "parts": self.parts, "model": self.model,
                "matches": sum(bool(h.match) for h in self.hits), "results": [h.to_json() for h in self.hits]}


def model_info(model: TagModel, text: str | None) -> dict[str, Any]:
    """Which model answers a query: its spec, version and kind, and whether the query's text was
    a label it trained on (``seen``), held out of its training, new to it, or None (not a text
    query, or a model not trained on labels)."""
    return {"spec": model.spec, "version": model.version, "kind": model.describe(),
            "label": model.label_training(text) if text is not None else None}
