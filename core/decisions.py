"""Tags as decisions: whether a stored tag's label is in the photo (``match``) and how sure
(``confidence``, 0..1).

A model version decides each label by a :class:`Rule`, one row of ``label_cutoffs``: the tag
matches when its score is at least the rule's ``threshold``, and its confidence is
``sigmoid(slope * (score - threshold))`` (0.5 at the threshold). Where rules come from is
:mod:`tagger.decisions` (fitted per label when a bundle is built, or derived from the label's
score distribution over the collection). A person's threshold for a label
(``tagscope labels set LABEL --threshold X``, stored in ``labels.threshold``) replaces the
calibrated one, for any model.
People's verdicts come last and win: a confirmed label matches with confidence 1, a rejected one
is never shown (:mod:`core.feedback`).

This module only reads rules and applies them, in Python (:func:`decide`) and in SQL
(:func:`matching_tags`), so that every reader (``tagscope show``, the API, exports, the ``--tag``
filter) decides the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from core.schema import KEYWORD, Label, LabelCutoff, Tag

DEFAULT_SLOPE = 20.0  # confidence's steepness when a person set a threshold for a label with no rule
USER = "user"


@dataclass(frozen=True)
class Rule:
    """How one label is decided under one model version (``threshold`` None: nothing matches)."""

    threshold: float | None
    slope: float = DEFAULT_SLOPE
    source: str = "none"

    def matches(self, score: float | None) -> bool:
        return self.threshold is not None and score is not None and score >= self.threshold

    def confidence(self, score: float | None) -> float:
        if score is None or self.threshold is None:
            return 0.0
        z = self.slope * (score - self.threshold)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_json(self) -> dict:
        return {"threshold": self.threshold, "slope": self.slope, "source": self.source}


UNDECIDED = Rule(None, DEFAULT_SLOPE, "none")  # a label with no rule yet matches nothing


def rules(s: Session, model_version_id: int | None, label_ids: Iterable[int] | None = None) -> dict[int, Rule]:
    """label id -> its :class:`Rule` under ``model_version_id``, a person's threshold applied; labels
    with neither a rule nor a person's threshold are left out (they are :data:`UNDECIDED`)."""
    query = (select(Label.id, Label.threshold, LabelCutoff.threshold, LabelCutoff.slope, LabelCutoff.source)
             .outerjoin(LabelCutoff, and_(LabelCutoff.label_id == Label.id,
                                          LabelCutoff.model_version_id == model_version_id)))
    if label_ids is not None:
        query = query.where(Label.id.in_(list(label_ids)))
    out: dict[int, Rule] = {}
    for label_id, mine, threshold, slope, source in s.execute(query):
        if mine is not None:
            out[label_id] = Rule(float(mine), float(slope or DEFAULT_SLOPE), USER)
        elif source is not None:
            out[label_id] = Rule(None if threshold is None else float(threshold), float(slope), source)
    return out


def rules_by_name(s: Session, model_version_id: int | None) -> dict[str, Rule]:
    """label name (lower case) -> its rule, for :func:`decide`."""
    names = dict(s.execute(select(Label.id, Label.name)).all())
    return {names[i].lower(): r for i, r in rules(s, model_version_id).items() if i in names}


def undecided(s: Session, model_version_id: int) -> list[int]:
    """Active or pending keyword labels that have no rule under ``model_version_id`` yet."""
    have = select(LabelCutoff.label_id).where(LabelCutoff.model_version_id == model_version_id)
    return list(s.scalars(select(Label.id).where(Label.kind == KEYWORD, Label.state != "removing",
                                                 Label.id.not_in(have)).order_by(Label.id)))


def decide(tags: list[dict], by_name: dict[str, Rule]) -> list[dict]:
    """Each tag (``label``, ``score``, ``confirmed`` as :func:`core.feedback.apply` gives them)
    with ``match`` and ``confidence``: a confirmed tag matches with confidence 1."""
    out = []
    for t in tags:
        if t.get("confirmed"):
            out.append({**t, "match": True, "confidence": 1.0})
            continue
        rule = by_name.get(t["label"].lower(), UNDECIDED)
        out.append({**t, "match": rule.matches(t["score"]), "confidence": round(rule.confidence(t["score"]), 4)})
    return out


def matches_first(tags: list[dict]) -> list[dict]:
    """Decided tags with the matches first, each part in the order given (best score first)."""
    return [t for t in tags if t["match"]] + [t for t in tags if not t["match"]]


def cutoff_of(model_version_id: int):
    """The SQL expression of a label's effective threshold under a version (a person's, else the
    rule's), correlated to ``Tag.label_id``; NULL where nothing matches or no rule exists."""
    calibrated = (select(LabelCutoff.threshold)
                  .where(LabelCutoff.label_id == Tag.label_id, LabelCutoff.model_version_id == model_version_id)
                  .correlate(Tag).scalar_subquery())
    mine = select(Label.threshold).where(Label.id == Tag.label_id).correlate(Tag).scalar_subquery()
    return func.coalesce(mine, calibrated)


def matching_tags(model_version_id: int, label_ids: Iterable[int] | Select | None = None) -> Select:
    """``SELECT tags.image_id`` of the tags that match under ``model_version_id`` (of the given
    labels), for filters: ``Image.id.in_(matching_tags(v, ids))``."""
    query = select(Tag.image_id).where(Tag.model_version_id == model_version_id,
                                       Tag.score >= cutoff_of(model_version_id))
    if label_ids is not None:
        query = query.where(Tag.label_id.in_(label_ids if isinstance(label_ids, Select) else list(label_ids)))
    return query
