"""Browsing without a text: the photos passing some filters in date order, and the library
grouped by month, place, country, camera or tag (the keyword tree, each keyword counting the
photos that have it or a keyword under it), with counts. Pure SQL over ``images``, ``media``
and ``tags``; the same :class:`~indexer.search.filters.Filters` as search.

Dates are the camera's clock (``media.taken``, :mod:`core.media.metadata`); a file without one
sorts by its modification time, after the dated ones.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from core.db import Database
from core.errors import TagscopeError
from core.keyword_tree import Node, Tree
from core.schema import Embedding, Image, Media
from core.sql_in import chunks
from indexer.search import keywords
from indexer.search.filters import SORTS, Filters

GROUPINGS = ("month", "place", "country", "camera", "tag")
COVERS = 4  # photos shown on a group
MAX_GROUPS = 1000


def check_sort(sort: str | None, default: str = "relevance") -> str:
    sort = (sort or default).strip().lower()
    if sort not in SORTS:
        raise TagscopeError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    return sort


def check_grouping(by: str | None) -> str:
    by = (by or "month").strip().lower()
    if by not in GROUPINGS:
        raise TagscopeError(f"browse by one of {', '.join(GROUPINGS)}, got {by!r}")
    return by


def _searchable(filters: Filters, version_id: int) -> Select:
    """Tagged photos with a stored embedding of the version, passing ``filters``."""
    query = (select(Image.id).join(Embedding, Embedding.image_id == Image.id)
             .where(Embedding.model_version_id == version_id))
    return filters.where(query, version_id)


def _date_order(sort: str) -> list:
    newest = sort != "oldest"
    taken = Media.taken.desc() if newest else Media.taken.asc()
    mtime = Image.mtime.desc() if newest else Image.mtime.asc()
    return [case((Media.taken.is_(None), 1), else_=0), taken, mtime, Image.id.desc() if newest else Image.id.asc()]


def listing(db: Database, filters: Filters, version_id: int, sort: str, offset: int, n: int) -> list[int]:
    """Ids of ranks ``offset`` to ``offset + n`` of the photos passing ``filters``, by date
    (``newest`` or ``oldest`` first)."""
    query = (_searchable(filters, version_id).outerjoin(Media, Media.image_id == Image.id)
             .order_by(*_date_order(sort)).offset(offset).limit(n))
    with db.session() as s:
        return list(s.scalars(query))


def count(db: Database, filters: Filters, version_id: int) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(_searchable(filters, version_id).subquery())) or 0)


def by_date(db: Database, ids: Sequence[int], sort: str) -> list[int]:
    """``ids`` in date order (``newest`` or ``oldest`` first); undated ones last."""
    when: dict[int, tuple[int, float]] = {}
    with db.session() as s:
        for chunk in chunks(list(ids)):
            for i, taken, mtime in s.execute(select(Image.id, Media.taken, Image.mtime)
                                             .outerjoin(Media, Media.image_id == Image.id)
                                             .where(Image.id.in_(chunk))):
                t = taken.replace(tzinfo=timezone.utc).timestamp() if taken is not None else (mtime or 0.0)
                when[i] = (taken is None, t)
    sign = -1 if sort != "oldest" else 1
    return sorted(ids, key=lambda i: (when.get(i, (True, 0.0))[0], sign * when.get(i, (True, 0.0))[1], sign * i))


def taken_of(db: Database, ids: Sequence[int]) -> dict[int, datetime]:
    """When each of ``ids`` was taken (camera clock), where known."""
    out: dict[int, datetime] = {}
    with db.session() as s:
        for chunk in chunks(list(ids)):
            out.update(s.execute(select(Media.image_id, Media.taken).where(Media.image_id.in_(chunk),
                                                                          Media.taken.is_not(None))).all())
    return out


@dataclass(frozen=True)
class Group:
    """One group of a browse view: ``filters`` are what narrows a search or listing to it."""

    key: str
    label: str
    count: int
    filters: dict[str, str]
    covers: tuple[int, ...] = ()
    children: tuple[Group, ...] = ()  # by tag: the keywords under this one, nested

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "count": self.count, "filters": self.filters,
                "covers": list(self.covers), "children": [c.to_json() for c in self.children]}


def groups(db: Database, filters: Filters, version_id: int, by: str, covers: int = COVERS,
           limit: int = MAX_GROUPS) -> tuple[list[Group], int]:
    """The groups of the photos passing ``filters`` (months newest first; places, cameras and
    tags by count; tags as the keyword tree, nested, :func:`_keyword_tree`), and how many passing
    photos fall in no group (no date, no place, no keyword...)."""
    by = check_grouping(by)
    ids = _searchable(filters, version_id).subquery()
    with db.session() as s:
        total = int(s.scalar(select(func.count()).select_from(ids)) or 0)
        if by == "month":
            year, month = func.extract("year", Media.taken), func.extract("month", Media.taken)
            rows = s.execute(select(year, month, func.count()).where(Media.image_id.in_(select(ids.c.id)),
                                                                     Media.taken.is_not(None))
                             .group_by(year, month).order_by(year.desc(), month.desc()).limit(limit)).all()
            out = [Group(f"{int(y):04d}-{int(m):02d}", f"{calendar.month_name[int(m)]} {int(y)}", int(c),
                         {"taken": f"{int(y):04d}-{int(m):02d}"}) for y, m, c in rows]
        elif by in ("place", "country"):
            cols = (Media.country,) if by == "country" else (Media.city, Media.region, Media.country)
            name = Media.country if by == "country" else func.coalesce(Media.city, Media.region, Media.country)
            rows = s.execute(select(*cols, func.count()).where(Media.image_id.in_(select(ids.c.id)), name.is_not(None))
                             .group_by(*cols).order_by(func.count().desc(), *cols).limit(limit)).all()
            out = []
            for *parts, c in rows:
                known = [p for p in parts if p]
                label = ", ".join(dict.fromkeys(known))
                out.append(Group(label, label, int(c), {"place": known[0]}))
        elif by == "camera":
            label = func.trim(func.coalesce(Media.camera_make, "") + " " + func.coalesce(Media.camera_model, ""))
            rows = s.execute(select(Media.camera_make, Media.camera_model, func.count())
                             .where(Media.image_id.in_(select(ids.c.id)),
                                    (Media.camera_make.is_not(None)) | (Media.camera_model.is_not(None)))
                             .group_by(Media.camera_make, Media.camera_model)
                             .order_by(func.count().desc(), label).limit(limit)).all()
            out = [Group(" ".join(p for p in (make, model) if p), " ".join(p for p in (make, model) if p), int(c),
                         {"camera": model or make}) for make, model, c in rows]
        else:
            out = _keyword_tree(s, select(ids.c.id), version_id, limit)
            grouped = int(s.scalar(keywords.with_any(version_id, select(ids.c.id))) or 0)
    if by != "tag":
        grouped = sum(g.count for g in out)
    if covers:
        out = [replace(g, covers=tuple(listing(db, _narrowed(filters, g.filters), version_id, "newest", 0, covers)))
               for g in out]
    return out, total - grouped


def _keyword_tree(s: Session, image_ids: Select, version_id: int, limit: int) -> list[Group]:
    """The keyword tree (:mod:`core.keyword_tree`) as nested groups: each keyword with how many of
    ``image_ids`` have it or a keyword under it (:mod:`indexer.search.keywords`: one grouped
    query), keywords no photo has left out; siblings by count, at most ``limit`` of them."""
    count = {int(i): int(c) for i, c in s.execute(keywords.counts(version_id, image_ids))}
    tree = Tree.load(s)

    def level(nodes: list[Node]) -> list[Group]:
        kept = sorted((n for n in nodes if count.get(n.id)), key=lambda n: (-count[n.id], n.name.lower()))[:limit]
        return [Group(n.name, n.name, count[n.id], {"tag": n.name}, children=tuple(level(tree.kids(n.id))))
                for n in kept]

    return level(tree.roots())


def _narrowed(filters: Filters, extra: dict[str, str]) -> Filters:
    values = filters.to_json()
    values.update(extra)
    return Filters.from_args(values)
