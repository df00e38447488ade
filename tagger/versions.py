"""Model versions of a collection: which one search serves, and switching between them.

Tagging a collection with a new model version (by hand or by a schedule) stores that version's
tags and embeddings BESIDE the active version's (rows are keyed by version) and builds its own
index file; search keeps serving the active version meanwhile. When a job of the new version
closes and the new version covers the collection (every tagged image has its embedding),
:func:`switch_in` activates it in the transaction that closes the job, whoever closes it (a
worker that keeps no index too): one row update, which searchers notice at their next query.
The old version's data stays, so ``tagscope models use OLD`` switches back; ``tagscope models
remove OLD`` frees its space. A new version is decided before its tags are served: the close
computes its rules first (:mod:`tagger.decisions`), and :func:`switch_in` refuses a version that
leaves a label readers see without one.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.db import Database
from core.errors import TagscopeError
from core.schema import (
    TAGGED,
    Embedding,
    Image,
    IndexChange,
    LabelEmbedding,
    ModelVersion,
    Tag,
    collection_model_version,
    iso_utc,
    utcnow,
)
from tagger.decisions import missing_rules

log = logging.getLogger(__name__)


def coverage(db: Database, mv_id: int) -> tuple[int, int]:
    """(tagged images with an embedding of this version, tagged images)."""
    with db.session() as s:
        return _coverage(s, mv_id)


def _coverage(s: Session, mv_id: int) -> tuple[int, int]:
    tagged = s.scalar(select(func.count()).select_from(Image).where(Image.status == TAGGED)) or 0
    have = s.scalar(select(func.count()).select_from(Embedding).join(Image, Image.id == Embedding.image_id)
                    .where(Embedding.model_version_id == mv_id, Image.status == TAGGED)) or 0
    return int(have), int(tagged)


def switch_if_covering(db: Database, mv_id: int) -> bool:
    """Activate version ``mv_id`` when it is not active and covers the collection; True if it did."""
    with db.session() as s:
        return switch_in(s, mv_id)


def switch_in(s: Session, mv_id: int) -> bool:
    """:func:`switch_if_covering` in the caller's transaction (a job's close: the job is done and
    its version serves in one commit). A fact of the database alone: whoever closes the job
    switches, whether or not its machine keeps an index (``keep_index``). Not while a label that
    readers see has no rule for the version (the close computed them just before)."""
    active = collection_model_version(s)
    if active is not None and active.id == mv_id and active.active_since is not None:
        return False
    have, tagged = _coverage(s, mv_id)
    if tagged == 0 or have < tagged:
        return False
    undecided = missing_rules(s, mv_id, shown_only=True)
    if undecided:  # its tags would be served undecided: the next close (or `tagscope labels calibrate`) decides
        log.warning("model version %d covers the collection but %d label(s) have no rule for it yet: not "
                    "switched in", mv_id, len(undecided))
        return False
    s.execute(update(ModelVersion).where(ModelVersion.id == mv_id).values(active_since=utcnow()))
    return True


def list_versions(db: Database) -> list[dict[str, Any]]:
    """Every model version with its coverage; ``active`` marks the one search serves."""
    with db.session() as s:
        active = collection_model_version(s)
        rows = s.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
    out = []
    for mv in rows:
        have, tagged = coverage(db, mv.id)
        out.append({"version": mv.version, "spec": mv.spec, "dim": mv.embed_dim,
                    "active": active is not None and mv.id == active.id, "embeddings": have, "tagged_images": tagged,
                    "covers": tagged > 0 and have == tagged,
                    "active_since": iso_utc(mv.active_since)})
    return out


def find_version(db: Database, ref: str) -> ModelVersion:
    """A version by its id, a unique prefix of it, or its spec as stored."""
    with db.session() as s:
        rows = s.scalars(select(ModelVersion)).all()
    hits = [mv for mv in rows if mv.version == ref or mv.spec == ref] or [mv for mv in rows
                                                                          if mv.version.startswith(ref)]
    if len(hits) != 1:
        known = ", ".join(f"{mv.version[:12]} ({mv.spec})" for mv in rows) or "none yet"
        raise TagscopeError(f"{'no' if not hits else 'more than one'} model version matches {ref!r}: "
                            f"use a version id or spec from `tagscope models` ({known})")
    return hits[0]


def use_version(db: Database, ref: str) -> ModelVersion:
    """Make ``ref`` the version search serves (switching back after an upgrade, say)."""
    mv = find_version(db, ref)
    have, _ = coverage(db, mv.id)
    if have == 0:
        raise TagscopeError(f"model {mv.spec} ({mv.version[:12]}) has no stored embeddings: tag with it first "
                            f"(`tagscope tag PATH --model {mv.spec}`)")
    with db.session() as s:
        s.execute(update(ModelVersion).where(ModelVersion.id == mv.id).values(active_since=utcnow()))
    return mv


def remove_version(db: Database, ref: str) -> tuple[ModelVersion, int]:
    """Drop a version that is not active: its tags, embeddings and pending index changes (the
    caller removes its index files). Returns it and how many embeddings went."""
    mv = find_version(db, ref)
    with db.session() as s:
        active = collection_model_version(s)
        if active is not None and active.id == mv.id:
            raise TagscopeError(f"model {mv.spec} is the active one: `tagscope models use` another first")
        n = s.execute(delete(Embedding).where(Embedding.model_version_id == mv.id)).rowcount
        s.execute(delete(Tag).where(Tag.model_version_id == mv.id))
        s.execute(delete(LabelEmbedding).where(LabelEmbedding.model_version_id == mv.id))
        s.execute(delete(IndexChange).where(IndexChange.model_version_id == mv.id))
        if active is not None:  # images it tagged last are the active version's again where it has them
            has_active = select(Embedding.image_id).where(Embedding.image_id == Image.id,
                                                          Embedding.model_version_id == active.id).exists()
            s.execute(update(Image).where(Image.model_version_id == mv.id, has_active)
                      .values(model_version_id=active.id))
    return mv, int(n or 0)
