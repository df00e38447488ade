"""What ``tagscope status`` (and ``GET /api/status``, and the status line of every page) reports
about a collection, and one image's record. SQL and small files only: the index is counted from
the metadata saved beside it, never loaded."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select

from core import feedback
from core.db import Database
from core.decisions import decide, matches_first, rules_by_name
from core.errors import TagscopeError
from core.keyword_tree import Tree
from core.schema import (
    DUPLICATE,
    FAILED,
    IMAGE_STATES,
    MISSING,
    TAGGED,
    Image,
    Job,
    Label,
    ModelVersion,
    Tag,
    collection_model_version,
)
from core.settings import Settings
from indexer import files
from indexer.status import index_status
from indexer.store import StoreVersion
from migrations import get_database
from tagger.decisions import ensure_decided
from tagger.media_store import media_json
from tagger.progress import progress
from tagger.text_lines import text_json

log = logging.getLogger(__name__)


def collection_status(settings: Settings, max_failures: int = 100) -> dict[str, Any]:
    db = get_database(settings.db_url)
    with db.session() as s:
        counts = dict(s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
        n_labels = s.scalar(select(func.count()).select_from(Label)) or 0
        failures = s.execute(select(Image.id, Image.path, Image.error).where(Image.status == FAILED)
                             .order_by(Image.id).limit(max_failures)).all()
        mv = collection_model_version(s)
        last_job = s.scalars(select(Job).order_by(Job.id.desc()).limit(1)).first()
    images = {state: int(counts.get(state, 0)) for state in IMAGE_STATES}
    out: dict[str, Any] = {
        "images": {"total": sum(images.values()), "tagged": images[TAGGED], "failed": images[FAILED],
                   "pending": images["pending"], "duplicates": images[DUPLICATE], "missing": images[MISSING]},
        "labels": int(n_labels),
        "model": None,
        "index": {"size": 0, "path": None},
        "failures": [{"image_id": i, "path": p, "error": e} for i, p, e in failures],
        "last_job": None,
        "database": _safe_url(settings.db_url),
    }
    if mv is not None:
        out["model"] = {"spec": mv.spec, "version": mv.version}
        path = files.index_path(settings.index_dir, mv.version)
        index = index_status(settings, db, StoreVersion.of(mv))
        damaged = index["damaged"]  # the file was set aside as damaged: rebuilt, the store answers meanwhile
        building = index["rebuild"].get("state") == "running" or bool(damaged and damaged["rebuilding"])
        out["index"] = {"size": index["size"], "tombstones": index["tombstones"],
                        "stored_embeddings": index["stored_embeddings"], "pending_changes": index["pending_changes"],
                        "fresh": index["fresh"], "position": index["position"], "log_head": index["log"]["head"],
                        "path": str(path) if path.exists() else None,
                        "state": "building" if building else "damaged" if damaged else "ready" if index["path"] else
                        "missing" if index["stored_embeddings"] else "empty",
                        "damaged": damaged["error"] if damaged else None}
    if last_job is not None:
        with db.session() as s:
            done, failed = progress(s, last_job)
        out["last_job"] = {"id": last_job.id, "kind": last_job.kind, "state": last_job.state,
                           "total": last_job.total, "done": done, "failed": failed,
                           "created_at": last_job.created_at.isoformat() if last_job.created_at else None,
                           "finished_at": last_job.finished_at.isoformat() if last_job.finished_at else None}
    return out


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def image_record(db: Database, image_id: int) -> dict[str, Any] | None:
    """One image and its stored tags (a duplicate shows its original's): the shape of
    ``GET /api/images/ID`` and ``tagscope show ID --json``. None when no such image. The tags are
    the active model version's (those search serves), or, for an image only a newer version
    has tagged so far, that version's; people's verdicts apply (:func:`core.feedback.apply`:
    confirmed first, rejected only in ``rejected``). Each tag is decided (:func:`decided_tags`:
    ``match``, ``confidence``, ``implied``): the matches first, then the tags also scored. ``text``:
    the lines OCR read in it and ``text_read`` what that reading was (:mod:`tagger.text_lines`)."""
    with db.session() as s:
        img = s.get(Image, image_id)
        if img is None:
            return None
        source = img.duplicate_of or img.id
        active = collection_model_version(s)
        versions = set(s.scalars(select(Tag.model_version_id).where(Tag.image_id == source).distinct()))
        shown = active.id if active is not None and active.id in versions else img.model_version_id
        tags = s.execute(select(Label.name, Tag.score, ModelVersion.version)
                         .join(Label, Label.id == Tag.label_id)
                         .join(ModelVersion, ModelVersion.id == Tag.model_version_id)
                         .where(Tag.image_id == source, Tag.model_version_id == shown, Label.state == "active")
                         .order_by(Tag.score.desc(), Label.name)).all()
        record = {"image_id": img.id, "path": img.path, "status": img.status, "error": img.error,
                  "width": img.width, "height": img.height, "format": img.format,
                  "duplicate_of": img.duplicate_of, "mtime": img.mtime,
                  "model_version": tags[0][2] if tags else None, **media_json(s, img.id, img.stack_key),
                  **text_json(s, source)}
    verdicts = feedback.for_image(db, image_id)
    stored = [{"label": n, "score": sc, "model_version": v} for n, sc, v in tags]
    rejected = sorted(label for label, v in verdicts.items() if v == feedback.REJECT)
    return {**record, "tags": decided_tags(db, shown, feedback.apply(stored, verdicts), rejected),
            "rejected": rejected}


def decided_tags(db: Database, version_id: int | None, tags: list[dict], rejected: list[str]) -> list[dict]:
    """A photo's tags as people see them (:func:`core.feedback.apply`), decided under
    ``version_id`` (:func:`core.decisions.decide`: ``match`` and ``confidence``), the matches first,
    and after them the keywords their matches imply (:meth:`core.keyword_tree.Tree.implied`:
    ``implied`` true, no score, the confidence of the surest match under them), none a person
    rejected; then the tags also scored, best first."""
    if not tags:
        return []
    if version_id is not None:
        try:
            ensure_decided(db, version_id)  # rules still missing (or stale) are computed first
        except TagscopeError as exc:  # the model cannot load here: the stored rules decide, none is invented
            log.warning("tag rules not computed: %s", exc)
    with db.session() as s:
        by_name = rules_by_name(s, version_id)
        tree = Tree.load(s)
    decided = [{**t, "implied": False} for t in matches_first(decide(tags, by_name))]
    matches = [t for t in decided if t["match"]]
    surest: dict[int, float] = {}
    for tag in matches:
        node = tree.by_name(tag["label"])
        for parent in tree.implied([node.id]) if node is not None else ():
            surest[parent] = max(surest.get(parent, 0.0), tag["confidence"])
    left_out = {t["label"].lower() for t in matches} | {label.lower() for label in rejected}
    implied = sorted(({"label": tree.nodes[i].name, "score": None, "model_version": None, "confirmed": False,
                       "match": True, "confidence": c, "implied": True}
                      for i, c in surest.items() if tree.nodes[i].name.lower() not in left_out),
                     key=lambda t: (-t["confidence"], t["label"].lower()))
    named = {t["label"].lower() for t in implied}
    return matches + implied + [t for t in decided if not t["match"] and t["label"].lower() not in named]
