"""The label vocabulary that tagging scores: seeding it, reading it, and its embeddings.

Search does not need the vocabulary (any text is embedded at query time); tagging stores the
best ``top_n`` vocabulary labels per image. Only the keyword tree's leaves are scored
(:meth:`core.keyword_tree.Tree.scored`): a keyword with children is implied by them and a group
only organises. A label's embedding is the mean of the L2-normalised embeddings of its name and
its synonyms, normalised again (its name's own embedding when it has none).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from sqlalchemy import func, select

from core.db import Database
from core.errors import TagscopeError
from core.keyword_tree import Tree
from core.schema import Label
from indexer.text_store import get_or_encode
from mkt.annotations import read_label_list
from mkt.tagmodel import TagModel

ACTIVE, PENDING, REMOVING = "active", "pending", "removing"


class Entry(NamedTuple):
    """A label tagging scores: its id, name and synonyms (which join its prompts)."""

    id: int
    name: str
    synonyms: tuple[str, ...] = ()


def vocabulary(db: Database) -> list[Entry]:
    """Every label tagging scores, in id order: the keyword leaves (not groups, not keywords with
    children), active ones and those being added (their tags stay hidden until they switch to
    active), not those being removed."""
    with db.session() as s:
        tree = Tree.load(s)
    return [Entry(n.id, n.name, n.synonyms) for i, n in sorted(tree.nodes.items()) if tree.scored(i)]


def prompts(label: Sequence) -> list[str]:
    """The texts a label's embedding averages: its name, then its synonyms (``label`` an
    :class:`Entry` or an ``(id, name)`` pair)."""
    synonyms = label[2] if len(label) > 2 else ()
    return list(dict.fromkeys([label[1], *(s for s in synonyms if s and s.strip())]))


def embed_labels(model: TagModel, labels: Sequence[Sequence], db: Database | None = None,
                 model_version_id: int | None = None) -> torch.Tensor:
    """``[L, D]``: each label's embedding, the normalised mean of its prompts' (:func:`prompts`),
    each text read from the version's store (:mod:`indexer.text_store`) or encoded and stored
    there, given the database and the version's row."""
    groups = [prompts(label) for label in labels]
    flat = [text for group in groups for text in group]
    if db is not None and model_version_id is not None:
        emb, _ = get_or_encode(db, model, model_version_id, flat)
    else:
        with torch.inference_mode():
            emb = model.encode_labels(flat) if flat else torch.empty(0, model.embed_dim, device=model.device)
    if len(flat) == len(groups):  # no synonyms: the names' own embeddings, untouched
        return emb
    out, start = [], 0
    for group in groups:
        part = emb[start:start + len(group)].float()
        start += len(group)
        out.append(part[0] if len(group) == 1 else F.normalize(F.normalize(part, dim=-1).mean(dim=0), dim=-1))
    return torch.stack(out)


_label_cache: dict[tuple, tuple[list[int], torch.Tensor]] = {}


def label_embeddings(model: TagModel, labels: Sequence[Sequence], db: Database | None = None,
                     model_version_id: int | None = None) -> tuple[list[int], torch.Tensor]:
    """:func:`embed_labels` of the vocabulary (:class:`Entry` or ``(id, name)`` pairs) with its
    ids, cached per database, model version and label texts (name and synonyms) in this process.
    The database is part of the key: a process that serves two collections stores each one's."""
    digest = hashlib.sha256("\n".join(f"{label[0]}\t" + "\t".join(prompts(label)) for label in labels)
                            .encode()).hexdigest()
    key = (db.url if db is not None else None, model_version_id, model.version, digest)
    if key not in _label_cache:
        emb = embed_labels(model, labels, db, model_version_id)
        _label_cache.clear()  # one vocabulary at a time is what a worker needs
        _label_cache[key] = ([label[0] for label in labels], emb)
    return _label_cache[key]


def default_label_names() -> list[str]:
    """The vocabulary for real photos shipped with the package (tagger/data/default_labels.txt)."""
    return read_label_list(Path(str(resources.files("tagger") / "data" / "default_labels.txt")))


def vocabulary_size(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Label)) or 0)


MAX_LABEL_CHARS = 200  # the labels.name column


def _too_long(name: str) -> str:
    return (f"label too long ({len(name)} characters, at most {MAX_LABEL_CHARS}): {name[:40]}...; "
            "use a short name (search takes any longer text)")


def check_label_names(names: Iterable[str]) -> list[str]:
    """Label names as typed, whitespace folded; raises :class:`TagscopeError` naming the fix for an
    empty or too long one."""
    out = []
    for raw in names:
        name = " ".join(raw.split())
        if not name:
            raise TagscopeError('empty label: give a name, e.g. tagscope labels add "golden retriever"')
        if len(name) > MAX_LABEL_CHARS:
            raise TagscopeError(_too_long(name))
        out.append(name)
    return out


def seed_labels(db: Database, names: Iterable[str], source: str, state: str = ACTIVE) -> list[str]:
    """Add labels not yet in the vocabulary (whitespace folded, case-insensitively new) in
    ``state`` (``pending``: scored from stored embeddings before they show); returns the names
    added."""
    clean = []
    seen = set()
    for name in names:
        name = " ".join(name.split())
        if name and name.lower() not in seen:
            seen.add(name.lower())
            clean.append(name)
    added: list[str] = []
    if not clean:
        return added
    with db.session() as s:
        existing = {n.lower() for n in s.scalars(select(Label.name))}
        for name in clean:
            if name.lower() not in existing:
                if len(name) > MAX_LABEL_CHARS:
                    raise TagscopeError(_too_long(name))
                s.add(Label(name=name, source=source, state=state))
                added.append(name)
    return added


def set_threshold(db: Database, name: str, value: str) -> tuple[str, float | None]:
    """A person's cutoff for one label (``value``: a score on the collection model's scale, or
    ``auto`` for the calibrated one); returns the label's name and the threshold set."""
    import math

    text = (value or "").strip().lower()
    if text == "auto":
        threshold = None
    else:
        try:
            threshold = float(text)
        except ValueError:
            threshold = math.nan
        if not math.isfinite(threshold):
            raise TagscopeError(f"--threshold must be a score (e.g. 0.3) or auto, got {value!r}")
    folded = " ".join((name or "").split()).lower()
    with db.session() as s:
        label = s.scalar(select(Label).where(func.lower(Label.name) == folded, Label.state != REMOVING))
        if label is None:
            raise TagscopeError(f"no label {name!r} in the vocabulary: see `tagscope labels list`")
        label.threshold = threshold
        return label.name, threshold
