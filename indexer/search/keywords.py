"""Which photos have a keyword, in SQL: the one rule of the ``tag`` filter (``--tag``, ``tag=``),
of the query language's ``-label`` parts and of browsing by tag.

A photo has a keyword when, for the keyword or any keyword under it in the tree
(:mod:`core.keyword_tree`), a stored tag of the photo MATCHES under the version searched
(:func:`core.decisions.cutoff_of`: the label's rule, or a person's threshold) or a person
confirmed it on the photo; a tag a person rejected on the photo does not count, and a photo on
which a person rejected the keyword itself never has it. Stored tags below their label's cutoff
("also scored") never count. Labels being removed are left out of the tree; tags of labels not
yet switched in (``pending``) do not count, as :func:`tagger.status.image_record` hides them.
"""

from __future__ import annotations

from sqlalchemy import CTE, ColumnElement, Select, and_, distinct, exists, func, or_, select, union_all
from sqlalchemy.orm import aliased

from core.decisions import cutoff_of
from core.feedback import CONFIRM, REJECT
from core.schema import Feedback, Image, Label, Tag

REMOVING, ACTIVE = "removing", "active"


def fold(name: str) -> str:
    """A keyword as compared: whitespace folded, lower case (as :meth:`core.keyword_tree.Tree.by_name`)."""
    return " ".join((name or "").split()).lower()


def _verdict(image_id, label_name, verdict: str) -> ColumnElement[bool]:
    """A person's ``verdict`` on ``label_name`` for ``image_id`` exists (SQL, correlated)."""
    return exists().where(Feedback.image_id == image_id, func.lower(Feedback.label) == func.lower(label_name),
                          Feedback.verdict == verdict)


def pairs(version_id: int, label_ids: Select | None = None) -> Select:
    """``(label_id, image_id)`` of every photo's own keywords under ``version_id`` (of the labels
    ``label_ids`` selects, else all): its matching stored tags that no person rejected, and the
    labels a person confirmed on it."""
    matching = (select(Tag.label_id.label("label_id"), Tag.image_id.label("image_id"))
                .join(Label, Label.id == Tag.label_id)
                .where(Tag.model_version_id == version_id, Label.state == ACTIVE,
                       Tag.score >= cutoff_of(version_id), ~_verdict(Tag.image_id, Label.name, REJECT)))
    confirmed = (select(Label.id.label("label_id"), Feedback.image_id.label("image_id"))
                 .join(Feedback, func.lower(Feedback.label) == func.lower(Label.name))
                 .where(Feedback.verdict == CONFIRM, Label.state != REMOVING))
    if label_ids is not None:  # in each branch: the tags index (label, version) finds them
        matching, confirmed = matching.where(Tag.label_id.in_(label_ids)), confirmed.where(Label.id.in_(label_ids))
    return union_all(matching, confirmed)


def under(name: str) -> CTE:
    """``SELECT id`` of the label named ``name`` and every label under it (a recursive query;
    a loop in stored parents ends it)."""
    top = (select(Label.id.label("id")).where(func.lower(Label.name) == fold(name), Label.state != REMOVING)
           .cte("keyword_under", recursive=True))
    child = aliased(Label)
    return top.union(select(child.id).join(top, child.parent_id == top.c.id).where(child.state != REMOVING))


def closure() -> CTE:
    """``(ancestor, label)`` for every label and each label under it, itself included."""
    top = (select(Label.id.label("ancestor"), Label.id.label("label")).where(Label.state != REMOVING)
           .cte("keyword_closure", recursive=True))
    child = aliased(Label)
    return top.union(select(top.c.ancestor, child.id).join(top, child.parent_id == top.c.label)
                     .where(child.state != REMOVING))


def has_keyword(name: str, version_id: int, image_id=Image.id) -> ColumnElement[bool]:
    """The condition that the photo ``image_id`` (a column) has the keyword ``name`` (see the
    module's rule; a confirmed text that is no label counts too)."""
    below = under(name)
    folded = fold(name)
    found = select(pairs(version_id, select(below.c.id)).subquery("own_keywords").c.image_id)
    confirmed = select(Feedback.image_id).where(func.lower(Feedback.label) == folded, Feedback.verdict == CONFIRM)
    rejected = select(Feedback.image_id).where(func.lower(Feedback.label) == folded, Feedback.verdict == REJECT)
    return and_(or_(image_id.in_(found), image_id.in_(confirmed)), image_id.not_in(rejected))


def counts(version_id: int, image_ids: Select) -> Select:
    """``(label_id, photos)``: how many of ``image_ids`` have each keyword (itself or any keyword
    under it), in one grouped query; keywords no photo has are left out."""
    own = pairs(version_id).subquery("own_keywords")
    tree = closure()
    ancestor = aliased(Label)
    return (select(tree.c.ancestor, func.count(distinct(own.c.image_id)))
            .join(own, own.c.label_id == tree.c.label)
            .join(ancestor, ancestor.id == tree.c.ancestor)
            .where(own.c.image_id.in_(image_ids), ~_verdict(own.c.image_id, ancestor.name, REJECT))
            .group_by(tree.c.ancestor))


def with_any(version_id: int, image_ids: Select) -> Select:
    """``SELECT COUNT`` of those of ``image_ids`` that have at least one keyword."""
    own = pairs(version_id).subquery("own_keywords")
    return select(func.count(distinct(own.c.image_id))).where(own.c.image_id.in_(image_ids))
