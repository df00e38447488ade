"""A page of results as :class:`~indexer.search.results.Hit` rows, joined with SQL in one query:
only tagged images show (a failed or missing one never does), each with its file, when it was
taken, whether it matches, its shot (a video's best frame, a stack's other files) and the
near-duplicates folded into it."""

from __future__ import annotations

from sqlalchemy import select

from core.db import Database
from core.media.metadata import Capture
from core.schema import TAGGED, Image, Media
from indexer.search.relevance import Cutoff
from indexer.search.results import Hit
from indexer.search.shots import Shot


def page_hits(db: Database, ranked: list[tuple[int, float]], cutoff: Cutoff | None,
              confirmed: set[int] = frozenset(), shots: dict[int, Shot] | None = None,
              similar: dict[int, list[int]] | None = None) -> list[Hit]:
    """The hits of ``ranked`` ((image id, score), in order) that are tagged: ``match`` by
    ``cutoff`` (None: no cutoff, an image query) or a person's confirmation (``confirmed``)."""
    if not ranked:
        return []
    with db.session() as s:  # one query: the page's files and when they were taken
        rows = {r.id: r for r in s.execute(select(Image.id, Image.path, Image.mtime, Media.taken,
                                                  Media.taken_offset_min)
                                           .outerjoin(Media, Media.image_id == Image.id)
                                           .where(Image.id.in_([i for i, _ in ranked]), Image.status == TAGGED))}
    shots = shots or {}
    return [Hit(i, rows[i].path, sc, True if i in confirmed else None if cutoff is None else cutoff.matches(sc),
                rows[i].mtime, i in confirmed, *_shot(shots.get(i)),
                Capture(taken=rows[i].taken, offset_min=rows[i].taken_offset_min).taken_iso(),
                tuple((similar or {}).get(i, ())))
            for i, sc in ranked if i in rows]


def _shot(shot: Shot | None) -> tuple[float | None, tuple[str, ...]]:
    return (None, ()) if shot is None else (shot.frame_s, tuple(shot.stack))
