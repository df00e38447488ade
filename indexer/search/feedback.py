"""People's verdicts in search: every query follows one rule (:func:`curate`), whatever its form
(one text, texts joined by operators, weighted), filters and page: a photo rejected for one of the
query's texts to look for never shows; one confirmed for one of them comes first
(:func:`for_texts`). A negative part's verdicts work the other way round
(:func:`indexer.search.parts.excluded`). The verdicts themselves are stored by :mod:`core.feedback`.
"""

from __future__ import annotations

from sqlalchemy import func, select

from core.db import Database
from core.feedback import CONFIRM, REJECT
from core.schema import Feedback


def for_label(db: Database, label: str) -> tuple[set[int], set[int]]:
    """(confirmed, rejected) photo ids of a label text."""
    name = " ".join(label.split()).lower()
    with db.session() as s:
        rows = s.execute(select(Feedback.image_id, Feedback.verdict).where(func.lower(Feedback.label) == name)).all()
    return {i for i, v in rows if v == CONFIRM}, {i for i, v in rows if v == REJECT}


def for_texts(db: Database, texts: list[str]) -> tuple[dict[str, set[int]], set[int]]:
    """The verdicts on a query's texts to look for: per text the photos confirmed for it, and the
    photos rejected for any of them (a photo that is not X answers no query for X, whatever else
    it asks). A photo rejected for one text is confirmed for none."""
    def key(text: str) -> str:
        return " ".join(text.split()).lower()

    with db.session() as s:
        rows = s.execute(select(Feedback.label, Feedback.image_id, Feedback.verdict)
                         .where(func.lower(Feedback.label).in_({key(t) for t in texts}))).all()
    rejected = {i for _, i, v in rows if v == REJECT}
    confirmed: dict[str, set[int]] = {key(t): set() for t in texts}
    for label, image_id, verdict in rows:
        if verdict == CONFIRM and image_id not in rejected and key(label) in confirmed:
            confirmed[key(label)].add(image_id)
    return {t: set(confirmed[key(t)]) for t in texts}, rejected


def curate(ranked: list[tuple[int, float]], first: list[tuple[int, float]], rejected: set[int]
           ) -> list[tuple[int, float]]:
    """A query's ranked (id, score) list as people's verdicts want it: ``first`` (the photos
    confirmed for it, in their own order) ahead of the rest, rejected photos never, each photo once."""
    first = [(i, sc) for i, sc in first if i not in rejected]
    ahead = {i for i, _ in first}
    return first + [(i, sc) for i, sc in ranked if i not in ahead and i not in rejected]
