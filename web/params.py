"""What a search is, as URL arguments: the text (``q``) or the photo (``like``: an image id) it
asks for, or neither (a listing of the photos passing the filters, by date), filters
(:data:`indexer.search.filters.NAMES`), ``sort`` and the page. The results page, the JSON API and the
image page (previous/next within the results) read it the same way."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import NotFound

from core.bounds import whole_number
from core.errors import TagscopeError
from indexer.search.browse import check_sort
from indexer.search.checks import MAX_DEPTH, MAX_K, check_query
from indexer.search.filters import Filters
from indexer.search.results import Results
from web.context import get_decided_searcher

PER_PAGE = 40


@dataclass(frozen=True)
class SearchArgs:
    """One search: at most one of ``q`` and ``like`` (neither: the photos passing ``filters`` by
    date); ``offset`` is the first rank shown."""

    q: str | None
    like: int | None
    filters: Filters
    k: int
    offset: int = 0
    sort: str = "relevance"

    @classmethod
    def parse(cls, args: MultiDict, k_default: int = PER_PAGE) -> SearchArgs | None:
        """From request arguments; None when they ask for no search. ``page`` (1-based, of ``k``
        results) or ``offset`` picks the ranks."""
        q, like = (args.get("q") or "").strip(), (args.get("like") or "").strip()
        filters = Filters.from_args(args)
        if q and like:
            raise TagscopeError("ask for a text (q) or a photo (like), not both")
        listing = not q and not like
        sort = check_sort(args.get("sort"), "newest" if listing else "relevance")
        if listing:
            if not filters and not args.get("sort"):
                if args.get("q") is not None:
                    raise TagscopeError("empty query: type a label or a description, e.g. \"red bicycle\"")
                return None
            if sort == "relevance":
                raise TagscopeError("sort by relevance needs a query: type a text, or sort by newest or oldest")
        k = whole_number(args.get("k", k_default), "k", 1, MAX_K)
        if q:
            q, k = check_query(q, k)
        image = whole_number(like, "like (an image id)", 1, 2 ** 63 - 1) if like else None
        if "page" in args:
            offset = (whole_number(args.get("page"), "page", 1, MAX_DEPTH) - 1) * k
        else:
            offset = whole_number(args.get("offset", 0), "offset", 0, MAX_DEPTH)
        return cls(q or None, image, filters, k, offset, sort)

    @property
    def page(self) -> int:
        return self.offset // self.k + 1

    def at(self, offset: int, k: int | None = None) -> SearchArgs:
        return replace(self, offset=max(0, offset), k=k or self.k)

    def url_args(self, **extra: Any) -> dict[str, Any]:
        """Arguments that repeat this search in a link (without the page unless given)."""
        out: dict[str, Any] = {"q": self.q} if self.q else {"like": self.like} if self.like else {}
        out.update({key: value for key, value in self.filters.to_json().items() if value})
        if self.sort != ("relevance" if self.q or self.like else "newest") or not out:
            out["sort"] = self.sort
        out.update({key: value for key, value in extra.items() if value is not None})
        return out

    def run(self) -> Results:
        s = get_decided_searcher()
        if self.q is None and self.like is None:
            return s.browse(self.filters, k=self.k, offset=self.offset, sort=self.sort)
        if self.q is not None:
            return s.find(self.q, k=self.k, offset=self.offset, filters=self.filters, sort=self.sort)
        vector = s.stored_embedding(self.like)
        if vector is None:
            raise NotFound(f"no tagged photo has id {self.like}: open a photo from the results and use "
                           "\"More like this\"")
        return s.find(image=vector, k=self.k, offset=self.offset, filters=self.filters, exclude=self.like,
                      sort=self.sort)
