"""Search filters: by folder (a path prefix), by tag (a keyword the photo has under the model
version searched: a matching tag of it or of any keyword under it in the tree, people's verdicts
applied, :mod:`indexer.search.keywords`), and by what each file says about its shot
(:mod:`core.schema.media`): ``taken`` (a year, month, day or a range of them, on the camera's
clock), ``place`` (a country, region, city or neighbourhood name, or a country code), ``camera``
(make or model, a substring) and ``media`` (photo, raw, video). Pure SQL over ``images``, ``tags`` and ``media``.

A filter that leaves few photos (``allowed_ids`` returns their ids) is searched exactly over
those photos; one that leaves many is applied to the index's candidates (``keep``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from core.db import Database
from core.errors import TagscopeError
from core.schema import TAGGED, Embedding, Image, Media
from core.sql_in import chunks
from indexer.search.keywords import has_keyword

if TYPE_CHECKING:
    import numpy as np

MAX_FILTER_CHARS = 1000
MEDIA_KINDS = ("photo", "raw", "video")
NAMES = ("folder", "tag", "taken", "place", "camera", "media")  # the same in the CLI, the API and the page
SORTS = ("relevance", "newest", "oldest")  # ``sort``: by the query's score, or by when taken
# ``place`` matches any level of a shot's place: el Raval, Barcelona, Catalonia, Spain or ES
PLACE_LEVELS = (Media.neighbourhood, Media.city, Media.region, Media.country, Media.country_code)


@dataclass(frozen=True)
class Filters:
    """``folder``: photos whose path lies under this folder; ``tag``: photos that have this keyword
    (a matching tag of it or of a keyword under it, :func:`indexer.search.keywords.has_keyword`);
    ``taken``: taken in this year, month or day, or range (``2023``, ``2023-07``, ``2023-07-14``,
    ``2023-07-01..2023-08-15``); ``place``: in this country, region, city or neighbourhood (or
    country code); ``camera``: make or model contains this; ``media``: photo, raw or video."""

    folder: str | None = None
    tag: str | None = None
    taken: str | None = None
    place: str | None = None
    camera: str | None = None
    media: str | None = None

    @classmethod
    def parse(cls, folder: str | None, tag: str | None = None, **others: str | None) -> Filters:
        """From request or command-line values; raises :class:`TagscopeError` naming the fix."""
        values = {}
        for name, value in (("folder", folder), ("tag", tag), *others.items()):
            if name not in NAMES:
                raise TagscopeError(f"unknown filter {name!r}: use {', '.join(NAMES)}")
            value = (value or "").strip()
            if "\x00" in value or "\ufffd" in value:
                raise TagscopeError(f"the {name} filter holds a NUL or bytes that are not UTF-8: type plain text")
            if len(value) > MAX_FILTER_CHARS:
                raise TagscopeError(f"the {name} filter is too long ({len(value)} characters): keep it under "
                                    f"{MAX_FILTER_CHARS}")
            values[name] = value or None
        folder = values["folder"]
        values["folder"] = folder.rstrip("/\\") or folder[:1] if folder else None  # "/" stays "/"
        if values.get("taken"):
            taken_range(values["taken"])  # refuses a malformed date now, with the fix
        if values.get("media"):
            values["media"] = values["media"].lower()
            if values["media"] not in MEDIA_KINDS:
                raise TagscopeError(f"media must be one of {', '.join(MEDIA_KINDS)}, got {values['media']!r}")
        return cls(**values)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Filters:
        """From request arguments (or a form) named as :data:`NAMES`."""
        return cls.parse(args.get("folder"), args.get("tag"),
                         **{name: args.get(name) for name in NAMES if name not in ("folder", "tag")})

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def where(self, query: Select, model_version_id: int) -> Select:
        """``query`` (over ``Image``) restricted to tagged photos passing the filters."""
        query = query.where(Image.status == TAGGED)
        if self.folder is not None:
            query = query.where(_under(self.folder))
        if self.tag is not None:
            query = query.where(has_keyword(self.tag, model_version_id))
        shot = self._shot()
        if shot is not None:
            query = query.where(Image.id.in_(select(Media.image_id).where(*shot)))
        return query

    def _shot(self) -> list[ColumnElement[bool]] | None:
        conditions: list[ColumnElement[bool]] = []
        if self.taken is not None:
            start, end = taken_range(self.taken)
            conditions += [Media.taken >= start, Media.taken < end]
        if self.place is not None:
            name = self.place.lower()
            conditions.append(or_(*(func.lower(level) == name for level in PLACE_LEVELS)))
        if self.camera is not None:
            pattern = "%" + _like_escape(self.camera.lower()) + "%"
            conditions.append(or_(func.lower(Media.camera_make).like(pattern, escape="\\"),
                                  func.lower(Media.camera_model).like(pattern, escape="\\")))
        if self.media is not None:
            conditions.append(Media.kind == self.media)
        return conditions or None


def _day_range(text: str) -> tuple[datetime, datetime]:
    """``2023`` / ``2023-07`` / ``2023-07-14`` -> [its first moment, the next one's)."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", text.strip())
    if not m:
        raise TagscopeError(f"taken must be a year, month or day (2023, 2023-07, 2023-07-14) or a range of "
                            f"them (2023-07-01..2023-08-15), got {text!r}")
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        start = datetime(year, month, day)
    except ValueError:
        raise TagscopeError(f"taken: {text!r} is not a date on the calendar") from None
    if m.group(3):
        return start, start + timedelta(days=1)
    if m.group(2):
        return start, datetime(year + (month == 12), month % 12 + 1, 1)
    return start, datetime(year + 1, 1, 1)


def taken_range(text: str) -> tuple[datetime, datetime]:
    """The [start, end) of a ``taken`` filter, on the camera's clock (the range's ends included)."""
    if ".." in text:
        first, _, last = text.partition("..")
        start, end = _day_range(first)[0], _day_range(last)[1]
    else:
        start, end = _day_range(text)
    if end <= start:
        raise TagscopeError(f"taken: the range {text!r} ends before it starts: write the earlier date first")
    return start, end


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _under(folder: str) -> ColumnElement[bool]:
    """Paths under ``folder`` (``/`` or the OS separator; ``%`` and ``_`` in names match literally)."""
    prefixes = {folder} if folder.endswith(("/", os.sep)) else {folder + "/", folder + os.sep}
    return or_(Image.path == folder, *(Image.path.like(_like_escape(p) + "%", escape="\\") for p in prefixes))


def allowed_ids(db: Database, filters: Filters, model_version_id: int, limit: int) -> np.ndarray | None:
    """The ids of the photos (with a stored embedding) that pass ``filters``, or None when more than
    ``limit`` do."""
    query = filters.where(select(Image.id).join(Embedding, Embedding.image_id == Image.id)
                          .where(Embedding.model_version_id == model_version_id), model_version_id)
    with db.session() as s:
        ids = s.scalars(query.limit(limit + 1)).all()
    import numpy as np  # here: the command line's filter options import this module, numpy not yet

    return None if len(ids) > limit else np.asarray(ids, np.int64)


def keep(db: Database, filters: Filters, model_version_id: int, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that pass ``filters``."""
    found: set[int] = set()
    with db.session() as s:
        for chunk in chunks(list(ids)):
            found.update(s.scalars(filters.where(select(Image.id).where(Image.id.in_(chunk)), model_version_id)))
    return found



def tagged_with(db: Database, label: str, model_version_id: int, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that have the keyword ``label`` (case and spacing ignored) under the version,
    as the ``tag`` filter decides it: a matching tag of it or of a keyword under it, verdicts applied."""
    found: set[int] = set()
    with db.session() as s:
        for chunk in chunks(list(ids)):
            found.update(s.scalars(select(Image.id).where(Image.id.in_(chunk),
                                                          has_keyword(label, model_version_id))))
    return found
