"""Tags out to the tools people use, and keywords in from them.

Export: each photo's tags as people see them (confirmed first, rejected never; the model's tags
from ``min_score`` up, at most ``top`` of them besides the confirmed ones) to XMP sidecars
(:mod:`tagger.exchange.xmp`), CSV (``path,tags,scores``: the columns ``tagscope train`` reads) or JSONL
(``file``, ``labels``, ``tags``). Import: keywords already in sidecars, embedded XMP or IPTC
become confirmed tags (source ``import``); a person's own verdict on a label is never
overridden.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core import feedback
from core.atomic import atomic_write
from core.bounds import whole_number
from core.db import Database
from core.schema import TAGGED, Feedback, Image, Label, ModelVersion, Tag, collection_model_version
from core.sql_in import chunks
from indexer.search.filters import Filters
from tagger.exchange import xmp

CHUNK = 1000
MAX_TOP = 1000  # --top: the model's tags per photo at most


@dataclass(frozen=True)
class PhotoTags:
    image_id: int
    path: str
    fs_path: str
    tags: list[dict]  # {"label", "score", "confirmed"} as people see them

    def keywords(self) -> list[str]:
        return [t["label"] for t in self.tags]


def _ids_under(db: Database, paths: Sequence[str]) -> list[int]:
    ids: set[int] = set()
    with db.session() as s:
        for path in paths:
            folder = Filters.parse(os.path.abspath(path), None)
            ids.update(s.scalars(folder.where(select(Image.id), 0)))  # tag filter unused: version irrelevant
    return sorted(ids)


def photo_tags(db: Database, paths: Sequence[str], min_score: float | None = None, top: int | None = None
               ) -> Iterator[PhotoTags]:
    """Every tagged photo under ``paths`` with the tags an export writes, ``CHUNK`` photos a query;
    ``top``: 0 (confirmed tags only) to ``MAX_TOP`` of the model's."""
    if top is not None:
        top = whole_number(top, "top", 0, MAX_TOP)  # a negative slice would drop the best instead
    with db.session() as s:
        active = collection_model_version(s)
    ids = _ids_under(db, paths)
    for chunk in chunks(ids, CHUNK):
        with db.session() as s:
            photos = {r.id: r for r in s.execute(select(Image.id, Image.path, Image.path_raw)
                                                  .where(Image.id.in_(chunk), Image.status == TAGGED))}
            stored: dict[int, list[dict]] = {i: [] for i in photos}
            if active is not None:
                for image_id, name, score, version in s.execute(
                        select(Tag.image_id, Label.name, Tag.score, ModelVersion.version)
                        .join(Label, Label.id == Tag.label_id)
                        .join(ModelVersion, ModelVersion.id == Tag.model_version_id)
                        .where(Tag.image_id.in_(list(photos)), Tag.model_version_id == active.id,
                               Label.state == "active").order_by(Tag.image_id, Tag.score.desc(), Label.name)):
                    stored[image_id].append({"label": name, "score": score, "model_version": version})
            verdicts: dict[int, dict[str, str]] = {i: {} for i in photos}
            for image_id, label, verdict in s.execute(select(Feedback.image_id, Feedback.label, Feedback.verdict)
                                                      .where(Feedback.image_id.in_(list(photos)))):
                verdicts[image_id][label] = verdict
        for image_id, row in sorted(photos.items()):
            shown = feedback.apply(stored[image_id], verdicts[image_id])
            confirmed = [t for t in shown if t["confirmed"]]
            model = [t for t in shown if not t["confirmed"] and (min_score is None or t["score"] >= min_score)]
            picked = confirmed + (model[:top] if top is not None else model)
            yield PhotoTags(image_id, row.path, os.fsdecode(row.path_raw),
                            [{"label": t["label"], "score": t["score"], "confirmed": t["confirmed"]} for t in picked])


def export_xmp(db: Database, paths: Sequence[str], style: str = "digikam", min_score: float | None = None,
               top: int | None = None) -> dict[str, int]:
    """Merge each photo's keywords into its sidecar; counts of sidecars written and failed."""
    written, failed = 0, 0
    for photo in photo_tags(db, paths, min_score, top):
        try:
            xmp.write_sidecar(photo.fs_path, photo.keywords(), style)
            written += 1
        except (OSError, xmp.XmpError):
            failed += 1  # an unreadable or unwritable sidecar: the others go on
    return {"sidecars": written, "failed": failed}


def export_table(db: Database, paths: Sequence[str], out: Path, fmt: str, min_score: float | None = None,
                 top: int | None = None) -> dict[str, int]:
    """All photos' tags as ``csv`` or ``jsonl`` in ``out``."""
    buf, n = io.StringIO(), 0
    writer = csv.writer(buf) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["path", "tags", "scores"])
    for photo in photo_tags(db, paths, min_score, top):
        n += 1
        if writer is not None:
            writer.writerow([photo.path, ";".join(photo.keywords()),
                             ";".join("" if t["score"] is None else f"{t['score']:.4f}" for t in photo.tags)])
        else:
            buf.write(json.dumps({"file": photo.path, "labels": photo.keywords(), "tags": photo.tags},
                                 ensure_ascii=False) + "\n")
    atomic_write(out, lambda tmp: Path(tmp).write_text(buf.getvalue(), encoding="utf-8"))
    return {"photos": n}


def import_keywords(db: Database, paths: Sequence[str]) -> dict[str, int]:
    """Keywords of the registered photos under ``paths`` -> confirmed tags (source ``import``)."""
    photos = imported = unreadable = 0
    for ids in chunks(_ids_under(db, paths), CHUNK):
        with db.session() as s:
            rows = s.execute(select(Image.id, Image.path_raw).where(Image.id.in_(ids))).all()
        for image_id, raw in rows:
            photos += 1
            try:
                words = xmp.read_keywords(os.fsdecode(raw))
            except (OSError, xmp.XmpError):
                unreadable += 1
                continue
            mine = {label.lower() for label, _ in feedback.for_image(db, image_id).items()}
            for word in words:
                if word.lower() not in mine and len(word) <= feedback.MAX_LABEL_CHARS:
                    feedback.record(db, image_id, word, feedback.CONFIRM, source="import")
                    imported += 1
    return {"photos": photos, "keywords": imported, "unreadable": unreadable}

