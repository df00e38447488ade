"""Tags out to the tools people use, and keywords in from them.

Export: each photo's tags as decisions (:mod:`core.decisions`, the rules read once per export for
the collection's model version): by default the MATCHING tags only (confirmed ones always,
rejected ones never) and the keywords of the tree they imply (``Dog`` matches: ``Mammals`` and
``Animals`` too). ``--top N`` writes the N best of the model's tags whatever they decide,
``--min-score X`` those scoring at least X, ``--all`` every stored tag. To XMP sidecars with
their paths in the keyword tree (:mod:`tagger.exchange.xmp`), CSV (``path,tags,scores``, the
columns ``tagscope train`` reads: the matches; ``also,also_scores``: the other tags exported) or
JSONL (``file``, ``labels``: the matches, ``tags``: every tag exported with ``score``, ``match``,
``confidence`` and ``confirmed``); with the words OCR read in each photo (:mod:`tagger.text_lines`):
``tagscope:Text`` in XMP, a ``text`` column / field in CSV and JSONL (its lines, a line each).
Import: keywords already in sidecars, embedded XMP or IPTC become confirmed tags (source
``import``), a person's own verdict on a label never overridden, and the keyword paths other
tools wrote join the vocabulary's tree.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from core import decisions, feedback
from core.atomic import atomic_write
from core.bounds import whole_number
from core.db import Database
from core.errors import TagscopeError
from core.keyword_tree import Tree
from core.schema import READ, TAGGED, Feedback, Image, Label, Tag, collection_model_version
from core.sql_in import chunks
from indexer.search.filters import Filters
from tagger import text_lines
from tagger.exchange import xmp

CHUNK = 1000
MAX_TOP = 1000  # --top: the model's tags per photo at most


@dataclass(frozen=True)
class Selection:
    """Which tags an export writes: by default the matches; ``top`` / ``min_score``: the model's
    best / those scoring at least this, whatever they decide; ``everything``: every stored tag.
    Confirmed tags always go, rejected ones never."""

    min_score: float | None = None
    top: int | None = None
    everything: bool = False

    def __post_init__(self) -> None:
        if self.top is not None:  # a negative slice would drop the best instead
            object.__setattr__(self, "top", whole_number(self.top, "top", 0, MAX_TOP))
        if self.everything and (self.top is not None or self.min_score is not None):
            raise TagscopeError("--all exports every stored tag: leave out --top and --min-score")

    @property
    def matches_only(self) -> bool:
        return not self.everything and self.top is None and self.min_score is None

    def pick(self, tags: list[dict]) -> list[dict]:
        """Of a photo's decided tags (best score first), those exported, matches first."""
        confirmed = [t for t in tags if t["confirmed"]]
        model = [t for t in tags if not t["confirmed"]]
        if self.matches_only:
            model = [t for t in model if t["match"]]
        elif not self.everything:
            model = [t for t in model if self.min_score is None or t["score"] >= self.min_score]
            model = model[:self.top] if self.top is not None else model
        return decisions.matches_first(confirmed + model)


@dataclass(frozen=True)
class PhotoTags:
    image_id: int
    path: str
    fs_path: str
    tags: list[dict]  # exported: {"label", "score", "confirmed", "match", "confidence"}, matches first
    implied: list[dict] = field(default_factory=list)  # keywords the matches imply (score None, "implied")
    text: list[str] | None = None  # the lines OCR read; None when it has not read the photo (or failed to)

    def matches(self) -> list[str]:
        """The labels the photo has: matching tags and the keywords they imply (training data)."""
        return [t["label"] for t in self.tags if t["match"]] + [t["label"] for t in self.implied]

    def others(self) -> list[dict]:
        """Exported tags that do not match (``--top``, ``--min-score``, ``--all``)."""
        return [t for t in self.tags if not t["match"]]

    def exported(self) -> list[dict]:
        return self.tags + self.implied


def _ids_under(db: Database, paths: Sequence[str]) -> list[int]:
    ids: set[int] = set()
    with db.session() as s:
        for path in paths:
            folder = Filters.parse(os.path.abspath(path), None)
            ids.update(s.scalars(folder.where(select(Image.id), 0)))  # tag filter unused: version irrelevant
    return sorted(ids)


def ensure_decided(db: Database, model_version_id: int) -> None:
    """Rules for every label of the version before an export reads them: computed where missing
    (or stale) by :func:`tagger.decisions.ensure_decided`."""
    from tagger.decisions import ensure_decided as compute

    compute(db, model_version_id)


class Exporter:
    """One export's view of the collection: its model version, each label's rule and the keyword
    tree, read once; :meth:`photos` gives the photos under some folders with their exported tags."""

    def __init__(self, db: Database, selection: Selection | None = None) -> None:
        self.db, self.selection = db, selection or Selection()
        with db.session() as s:
            active = collection_model_version(s)
            self.version_id = active.id if active is not None else None
        if self.version_id is not None:
            ensure_decided(db, self.version_id)
        with db.session() as s:
            self.rules = decisions.rules_by_name(s, self.version_id)
            self.tree = Tree.load(s)

    def photos(self, paths: Sequence[str]) -> Iterator[PhotoTags]:
        """Every tagged photo under ``paths`` with the tags the export writes, ``CHUNK`` photos a query."""
        for chunk in chunks(_ids_under(self.db, paths), CHUNK):
            with self.db.session() as s:
                photos = {r.id: r for r in s.execute(select(Image.id, Image.path, Image.path_raw)
                                                      .where(Image.id.in_(chunk), Image.status == TAGGED))}
                stored, verdicts = self._stored(s, list(photos))
                lines, reads = text_lines.lines_of(s, photos), text_lines.reads_of(s, photos)
            for image_id, row in sorted(photos.items()):
                decided = decisions.decide(feedback.apply(stored[image_id], verdicts[image_id]), self.rules)
                tags = self.selection.pick([t for t in decided if self._exportable(t)])
                tags = [{k: t[k] for k in ("label", "score", "confirmed", "match", "confidence")} for t in tags]
                read = reads.get(image_id, {}).get("state") == READ or bool(lines[image_id])
                yield PhotoTags(image_id, row.path, os.fsdecode(row.path_raw), tags,
                                self._implied(tags, verdicts[image_id]),
                                [line["text"] for line in lines[image_id]] if read else None)

    def _stored(self, s, ids: list[int]) -> tuple[dict[int, list[dict]], dict[int, dict[str, str]]]:
        """Each photo's stored tags under the version (best first) and its verdicts."""
        stored: dict[int, list[dict]] = {i: [] for i in ids}
        if self.version_id is not None:
            for image_id, name, score in s.execute(
                    select(Tag.image_id, Label.name, Tag.score).join(Label, Label.id == Tag.label_id)
                    .where(Tag.image_id.in_(ids), Tag.model_version_id == self.version_id, Label.state == "active")
                    .order_by(Tag.image_id, Tag.score.desc(), Label.name)):
                stored[image_id].append({"label": name, "score": score})
        verdicts: dict[int, dict[str, str]] = {i: {} for i in ids}
        for image_id, label, verdict in s.execute(select(Feedback.image_id, Feedback.label, Feedback.verdict)
                                                  .where(Feedback.image_id.in_(ids))):
            verdicts[image_id][label] = verdict
        return stored, verdicts

    def _exportable(self, tag: dict) -> bool:
        """Groups are never keywords; of the model's tags only those of scored keywords (leaves) count."""
        node = self.tree.by_name(tag["label"])
        if node is None:
            return True
        return not node.is_group and (tag["confirmed"] or self.tree.scored(node.id))

    def _implied(self, tags: list[dict], verdicts: dict[str, str]) -> list[dict]:
        """The keywords above the matching tags (groups left out) not exported themselves nor
        rejected, each as sure as its surest matching descendant."""
        skip = {t["label"].lower() for t in tags} | {k.lower() for k, v in verdicts.items() if v == feedback.REJECT}
        out: dict[int, dict] = {}
        for tag in tags:
            node = self.tree.by_name(tag["label"])
            if not tag["match"] or node is None:
                continue
            for above in self.tree.ancestors(node.id):
                if above.is_group or above.name.lower() in skip:
                    continue
                if above.id not in out or tag["confidence"] > out[above.id]["confidence"]:
                    out[above.id] = {"label": above.name, "score": None, "confirmed": False, "match": True,
                                     "confidence": tag["confidence"], "implied": True}
        return list(out.values())

    def xmp_entries(self, photo: PhotoTags, root: str) -> tuple[list[str], list[list[str]]]:
        """(dc:subject entries, keyword paths) of a photo's exported tags: a keyword of the tree by
        its path, with its parents and synonyms; a label in no tree under ``root``."""
        subjects: list[str] = []
        paths: list[list[str]] = []
        for tag in photo.tags:
            node = self.tree.by_name(tag["label"])
            if node is not None and self.tree.in_tree(node.id):
                paths.append(self.tree.path_names(node.id))
            else:
                paths.append([root, node.name if node is not None else tag["label"]])
            subjects += self.tree.written(node.id) if node is not None else [tag["label"]]
        return subjects, paths


def photo_tags(db: Database, paths: Sequence[str], selection: Selection | None = None) -> Iterator[PhotoTags]:
    """Every tagged photo under ``paths`` with the tags an export writes (by default the matches)."""
    return Exporter(db, selection).photos(paths)


def export_xmp(db: Database, paths: Sequence[str], style: str = "digikam", selection: Selection | None = None,
               root: str = xmp.ROOT_TAG) -> dict[str, int]:
    """Merge each photo's keywords into its sidecar; counts of sidecars written and failed."""
    exporter = Exporter(db, selection)
    written, failed = 0, 0
    for photo in exporter.photos(paths):
        try:
            xmp.write_sidecar(photo.fs_path, *exporter.xmp_entries(photo, root), style, text=photo.text)
            written += 1
        except (OSError, xmp.XmpError):
            failed += 1  # an unreadable or unwritable sidecar: the others go on
    return {"sidecars": written, "failed": failed}


def _scores(tags: list[dict]) -> str:
    return ";".join("" if t["score"] is None else f"{t['score']:.4f}" for t in tags)


def _text(photo: PhotoTags) -> str:
    """The photo's text lines as one text, a line each (empty when none was read)."""
    return text_lines.LINE_SEPARATOR.join(photo.text or [])


def export_table(db: Database, paths: Sequence[str], out: Path, fmt: str, selection: Selection | None = None
                 ) -> dict[str, int]:
    """All photos' tags as ``csv`` or ``jsonl`` in ``out``."""
    buf, n = io.StringIO(), 0
    writer = csv.writer(buf) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["path", "tags", "scores", "also", "also_scores", "text"])
    for photo in photo_tags(db, paths, selection):
        n += 1
        if writer is not None:
            matching = [t for t in photo.exported() if t["match"]]
            writer.writerow([photo.path, ";".join(photo.matches()), _scores(matching),
                             ";".join(t["label"] for t in photo.others()), _scores(photo.others()), _text(photo)])
        else:
            buf.write(json.dumps({"file": photo.path, "labels": photo.matches(), "tags": photo.exported(),
                                  "text": _text(photo)}, ensure_ascii=False) + "\n")
    atomic_write(out, lambda tmp: Path(tmp).write_text(buf.getvalue(), encoding="utf-8"))
    return {"photos": n}


def add_tree(db: Database, paths: list[list[str]]) -> list[str]:
    """Keyword paths found in sidecars -> the vocabulary's tree (:mod:`tagger.keyword_tree_store`);
    the names added, new leaves pending until scored (``settle``)."""
    if not paths:
        return []
    from tagger.keyword_tree_store import add_paths

    return list(add_paths(db, paths, "xmp"))


def import_keywords(db: Database, paths: Sequence[str], root: str = xmp.ROOT_TAG) -> dict[str, int]:
    """Keywords of the registered photos under ``paths`` -> confirmed tags (source ``import``), and
    the keyword paths other tools wrote (not under ``root``) -> the vocabulary's tree."""
    photos = imported = unreadable = 0
    found: dict[tuple[str, ...], list[str]] = {}
    for ids in chunks(_ids_under(db, paths), CHUNK):
        with db.session() as s:
            rows = s.execute(select(Image.id, Image.path_raw).where(Image.id.in_(ids))).all()
        for image_id, raw in rows:
            photos += 1
            try:
                words, tree_paths = xmp.read_photo(os.fsdecode(raw), root)
            except (OSError, xmp.XmpError):
                unreadable += 1
                continue
            for path in tree_paths:
                found.setdefault(tuple(p.lower() for p in path), path)
            mine = {label.lower() for label, _ in feedback.for_image(db, image_id).items()}
            for word in words:
                if word.lower() not in mine and len(word) <= feedback.MAX_LABEL_CHARS:
                    feedback.record(db, image_id, word, feedback.CONFIRM, source="import")
                    imported += 1
    added = add_tree(db, list(found.values()))
    return {"photos": photos, "keywords": imported, "unreadable": unreadable, "labels_added": len(added)}
