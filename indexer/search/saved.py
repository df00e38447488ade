"""Saved searches: a named query with its filters and sort (``saved_searches``,
:mod:`core.schema.user_data`), listed on the search page and run by ``tagscope saved run NAME``.

Everything stored is checked first, as a search would check it: the query by
:func:`indexer.search.searcher.check_query`, the filters by :meth:`Filters.parse` (only the names
of :data:`NAMES`), the sort against :data:`SORTS`. Errors are :class:`TagscopeError` naming the fix.
Listing, reading and removing import no model code (``tagscope saved list`` stays light).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.errors import TagscopeError
from core.schema import SavedSearch, iso_utc, utcnow
from indexer.search import query as grammar
from indexer.search.browse import check_sort
from indexer.search.filters import NAMES, SORTS, Filters

MAX_NAME_CHARS = 100
DEFAULT_SORT = SORTS[0]  # relevance


class NoSuchSaved(TagscopeError):
    """No saved search has that name."""


class NameTaken(TagscopeError):
    """A saved search already has that name (and it was not to be replaced)."""


@dataclass(frozen=True)
class Saved:
    """A saved search as stored: ``filters`` holds only the filters that have a value."""

    id: int
    name: str
    query: str
    filters: dict[str, str] = field(default_factory=dict)
    sort: str = DEFAULT_SORT
    created_at: str | None = None
    updated_at: str | None = None

    def url_args(self) -> dict[str, str]:
        """The search page's arguments that run it: ``q``, the filters and a sort other than the default."""
        out = {"q": self.query, **{name: value for name, value in self.filters.items() if name in NAMES}}
        if self.sort != DEFAULT_SORT:
            out["sort"] = self.sort
        return out

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "q": self.query,
                "filters": {name: self.filters.get(name) for name in NAMES}, "sort": self.sort,
                "created_at": self.created_at, "updated_at": self.updated_at}


def _saved(row: SavedSearch) -> Saved:
    return Saved(row.id, row.name, row.query, dict(row.filters or {}), row.sort, iso_utc(row.created_at),
                 iso_utc(row.updated_at))


def check_name(name: str | None) -> str:
    """A saved search's name: 1 to 100 printable characters, surrounding spaces dropped."""
    text = (name or "").strip()
    if not text:
        raise TagscopeError('a saved search needs a name: e.g. "beach 2023"')
    if len(text) > MAX_NAME_CHARS:
        raise TagscopeError(f"the name is {len(text)} characters long: keep it to {MAX_NAME_CHARS}")
    if not text.isprintable():
        raise TagscopeError(f"the name {text!r} holds a tab, line break or other control character: type plain text")
    return text


def check_filters(filters: Mapping[str, Any] | None) -> dict[str, str]:
    """Only the filters of :data:`NAMES`, each as a search reads it; those without a value left out."""
    given = dict(filters or {})
    for name, value in given.items():
        if value is not None and not isinstance(value, str):
            raise TagscopeError(f"the {name} filter must be text, got {type(value).__name__}")
    parsed = Filters.parse(given.pop("folder", None), given.pop("tag", None), **given)  # unknown names refused
    return {name: value for name, value in parsed.to_json().items() if value is not None}


def check_query_text(query: str | None) -> str:
    """The query as search would run it: cleaned by :func:`indexer.search.searcher.check_query`
    (imported here only: that module loads torch), and in the grammar of :mod:`indexer.search.query`."""
    if not isinstance(query, str):
        raise TagscopeError('a saved search needs a query text: e.g. "red bicycle"')
    from indexer.search.checks import check_query

    text = check_query(query, None)[0]
    grammar.parse(text)
    return text


def save(db: Database, name: str, query: str, filters: Mapping[str, Any] | None = None, sort: str | None = None,
         replace: bool = False) -> tuple[Saved, bool]:
    """Store a saved search; (it, whether it is new). An existing name is refused unless ``replace``."""
    for what, value in (("name", name), ("sort", sort)):
        if value is not None and not isinstance(value, str):
            raise TagscopeError(f"the {what} must be text, got {type(value).__name__}")
    name, filters, sort = check_name(name), check_filters(filters), check_sort(sort, DEFAULT_SORT)
    query = check_query_text(query)
    try:
        with db.session() as s:
            row = s.scalar(select(SavedSearch).where(SavedSearch.name == name))
            created = row is None
            if row is None:
                now = utcnow()
                row = SavedSearch(name=name, query=query, filters=filters, sort=sort, created_at=now,
                                  updated_at=now)
                s.add(row)
            elif not replace:
                raise NameTaken(f"a saved search named {name!r} exists: replace it (`tagscope saved add NAME QUERY "
                                "--replace`) or pick another name")
            else:
                row.query, row.filters, row.sort, row.updated_at = query, filters, sort, utcnow()
            s.flush()
            return _saved(row), created
    except IntegrityError:  # another writer saved the same name in the meantime
        if replace:
            return save(db, name, query, filters, sort, replace=True)
        raise NameTaken(f"a saved search named {name!r} exists: replace it (`tagscope saved add NAME QUERY "
                        "--replace`) or pick another name") from None


def add(db: Database, name: str, query: str, filters: Mapping[str, Any] | None = None,
        sort: str | None = None) -> Saved:
    """A new saved search; :class:`NameTaken` when the name is in use."""
    return save(db, name, query, filters, sort)[0]


def replace(db: Database, name: str, query: str, filters: Mapping[str, Any] | None = None,
            sort: str | None = None) -> Saved:
    """Save under ``name``, replacing the query, filters and sort of one saved there before."""
    return save(db, name, query, filters, sort, replace=True)[0]


def list_saved(db: Database) -> list[Saved]:
    """Every saved search, by name (case ignored)."""
    with db.session() as s:
        rows = s.scalars(select(SavedSearch).order_by(func.lower(SavedSearch.name), SavedSearch.name)).all()
        return [_saved(row) for row in rows]


def _missing(name: str) -> NoSuchSaved:
    return NoSuchSaved(f"no saved search named {name!r}: `tagscope saved list` shows them")


def get(db: Database, name: str) -> Saved:
    """The saved search named ``name``; :class:`NoSuchSaved` when there is none."""
    key = (name or "").strip()
    with db.session() as s:
        row = s.scalar(select(SavedSearch).where(SavedSearch.name == key))
        if row is None:
            raise _missing(key)
        return _saved(row)


def remove(db: Database, name: str) -> Saved:
    """Forget the saved search named ``name`` (returned); :class:`NoSuchSaved` when there is none."""
    key = (name or "").strip()
    with db.session() as s:
        row = s.scalar(select(SavedSearch).where(SavedSearch.name == key))
        if row is None:
            raise _missing(key)
        gone = _saved(row)
        s.execute(delete(SavedSearch).where(SavedSearch.id == row.id))
        return gone
