"""Search filters: by folder (a path prefix) and by stored tag (a label the tagger stored for the
image under the model version searched). Pure SQL over the ``images`` and ``tags`` tables.

A filter that leaves few photos (``allowed_ids`` returns their ids) is searched exactly over
those photos; one that leaves many is applied to the index's candidates (``keep``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, or_, select

from core.db import TAGGED, Database, Embedding, Image, Label, Tag
from core.errors import TagscopeError
from indexer.store import chunks

MAX_FILTER_CHARS = 1000


@dataclass(frozen=True)
class Filters:
    """``folder``: photos whose path lies under this folder; ``tag``: photos with this stored tag."""

    folder: str | None = None
    tag: str | None = None

    @classmethod
    def parse(cls, folder: str | None, tag: str | None) -> Filters:
        """From request or command-line values; raises :class:`TagscopeError` naming the fix."""
        values = []
        for name, value in (("folder", folder), ("tag", tag)):
            value = (value or "").strip()
            if "\x00" in value or "\ufffd" in value:
                raise TagscopeError(f"the {name} filter holds a NUL or bytes that are not UTF-8: type plain text")
            if len(value) > MAX_FILTER_CHARS:
                raise TagscopeError(f"the {name} filter is too long ({len(value)} characters): keep it under "
                                    f"{MAX_FILTER_CHARS}")
            values.append(value or None)
        folder = values[0].rstrip("/\\") or values[0][:1] if values[0] else None  # "/" stays "/"
        return cls(folder, values[1])

    def __bool__(self) -> bool:
        return self.folder is not None or self.tag is not None

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "tag": self.tag}

    def where(self, query: Select, model_version_id: int) -> Select:
        """``query`` (over ``Image``) restricted to tagged photos passing the filters."""
        query = query.where(Image.status == TAGGED)
        if self.folder is not None:
            query = query.where(_under(self.folder))
        if self.tag is not None:
            tagged = (select(Tag.image_id).join(Label, Label.id == Tag.label_id)
                      .where(Label.name == self.tag, Tag.model_version_id == model_version_id))
            query = query.where(Image.id.in_(tagged))
        return query


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
    return None if len(ids) > limit else np.asarray(ids, np.int64)


def keep(db: Database, filters: Filters, model_version_id: int, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that pass ``filters``."""
    found: set[int] = set()
    with db.session() as s:
        for chunk in chunks(list(ids)):
            found.update(s.scalars(filters.where(select(Image.id).where(Image.id.in_(chunk)), model_version_id)))
    return found

