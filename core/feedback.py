"""People's corrections to the tags: confirm or reject a label on a photo, or add one by hand.

Stored per photo and label text (``feedback`` table) with its time and source (``user``, or
``import`` for keywords read from XMP/IPTC). Whatever a model scores after a re-tag, a confirmed
label is shown first and a rejected one never: in tag lists (:func:`tagger.status.image_record`)
and exports (:func:`apply`), and in search results, where every query follows one rule
(:mod:`indexer.search.feedback`). Label texts are compared with their whitespace folded and case
ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from core.db import Database
from core.errors import TagscopeError
from core.schema import Feedback, Image, utcnow

CONFIRM, REJECT = "confirm", "reject"
VERDICTS = (CONFIRM, REJECT)
MAX_LABEL_CHARS = 200


def normalise(label: str) -> str:
    """A label text as stored: whitespace folded; raises :class:`TagscopeError` naming the fix."""
    name = " ".join((label or "").split())
    if not name:
        raise TagscopeError('empty label: give the tag\'s text, e.g. "golden retriever"')
    if len(name) > MAX_LABEL_CHARS or "\x00" in name:
        raise TagscopeError(f"a label is at most {MAX_LABEL_CHARS} characters of text ({len(name)} given): "
                            "shorten it")
    return name


@dataclass(frozen=True)
class Verdict:
    image_id: int
    label: str
    verdict: str
    source: str


def record(db: Database, image_id: int, label: str, verdict: str, source: str = "user") -> Verdict:
    """Confirm or reject ``label`` on a photo (a later verdict replaces an earlier one)."""
    if verdict not in VERDICTS:
        raise TagscopeError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    name = normalise(label)
    with db.session() as s:
        if s.get(Image, image_id) is None:
            raise LookupError(f"no image {image_id}")
        s.execute(delete(Feedback).where(Feedback.image_id == image_id, func.lower(Feedback.label) == name.lower()))
        s.add(Feedback(image_id=image_id, label=name, verdict=verdict, source=source, created_at=utcnow()))
    return Verdict(image_id, name, verdict, source)


def clear(db: Database, image_id: int, label: str) -> bool:
    """Forget the verdict on ``label`` for a photo; True when there was one."""
    name = normalise(label)
    with db.session() as s:
        done = s.execute(delete(Feedback).where(Feedback.image_id == image_id,
                                                func.lower(Feedback.label) == name.lower()))
        return bool(done.rowcount)


def for_image(db: Database, image_id: int) -> dict[str, str]:
    """label -> verdict of one photo."""
    with db.session() as s:
        return dict(s.execute(select(Feedback.label, Feedback.verdict).where(Feedback.image_id == image_id)).all())


def apply(tags: list[dict], verdicts: dict[str, str]) -> list[dict]:
    """A photo's stored tags (``label``, ``score``... best first) as people see them: confirmed
    labels first (those with no stored score too, score None), rejected ones gone; each tag says
    ``confirmed``."""
    by_lower = {label.lower(): v for label, v in verdicts.items()}
    stored = {t["label"].lower() for t in tags}
    confirmed = [{**t, "confirmed": True} for t in tags if by_lower.get(t["label"].lower()) == CONFIRM]
    added = [{"label": label, "score": None, "model_version": None, "confirmed": True}
             for label, v in sorted(verdicts.items()) if v == CONFIRM and label.lower() not in stored]
    rest = [{**t, "confirmed": False} for t in tags if t["label"].lower() not in by_lower]
    return confirmed + added + rest


def rows(db: Database) -> Iterator[tuple[int, str, list[tuple[str, str]]]]:
    """(image id, path, [(label, verdict)]) of every photo with feedback, by id."""
    with db.session() as s:
        result = s.execute(select(Image.id, Image.path, Feedback.label, Feedback.verdict)
                           .join(Feedback, Feedback.image_id == Image.id).order_by(Image.id, Feedback.label)).all()
    current: tuple[int, str] | None = None
    verdicts: list[tuple[str, str]] = []
    for image_id, path, label, verdict in result:
        if current is not None and current[0] != image_id:
            yield current[0], current[1], verdicts
            verdicts = []
        current = (image_id, path)
        verdicts.append((label, verdict))
    if current is not None:
        yield current[0], current[1], verdicts
