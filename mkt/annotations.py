"""Multi-label annotations (which labels each image has) in one simple format: what MKT
trains and evaluates on, and what tag exports and vocabulary files are.

Annotations are JSONL, one image per line (the synthetic world's ``labels.jsonl`` is one)::

    {"file": "Flickr/beach/0001_2124494179.jpg", "labels": ["sky", "beach"], "ignore": ["water"]}

``file`` is relative to the images folder; labels listed are positive (+1), labels in
``ignore`` are left out of losses and metrics (0), every other label of the split is negative
(-1). A CSV with a header ``path,tags`` (tags separated by ``;`` or ``|``) works too.
A split is two label lists: SEEN (trained on) and UNSEEN (held out), one label per line.

- NUS-WIDE (the protocol's 925 seen / 81 unseen): :func:`nus_wide_split` from the dataset's
  TagList1k.txt and Concepts81.txt, and :func:`mkt.training.data.convert_biam` for BiAM's h5
  annotation files.
- Any labelled folder: :func:`read_annotations` + :func:`read_label_list`.
- The synthetic world: :func:`mkt.synthetic.synthetic_split` holds out compound labels.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import TagscopeError


@dataclass(frozen=True)
class Example:
    file: str
    labels: frozenset[str]
    ignore: frozenset[str] = frozenset()


def read_annotations(path: str | os.PathLike) -> list[Example]:
    """Read a JSONL or CSV annotation file; errors name the line and the fix."""
    path = Path(path)
    if not path.is_file():
        raise TagscopeError(f"annotation file {path} does not exist")
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                example = Example(str(row["file"]), frozenset(row.get("labels", [])), frozenset(row.get("ignore", [])))
                negatives = frozenset(row.get("negatives", []))  # explicit; every label not given is one anyway
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise TagscopeError(f"{path}:{n}: expected {{\"file\": ..., \"labels\": [...]}} ({exc})") from None
            both = (example.labels | example.ignore) & negatives or example.labels & example.ignore
            if both:
                raise TagscopeError(f"{path}:{n}: {sorted(both)[0]!r} is in two of labels, negatives and ignore: "
                                    "keep it in one")
            out.append(example)
    return out


def _read_csv(path: Path) -> list[Example]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "tags"} <= set(reader.fieldnames):
            raise TagscopeError(f"{path}: a CSV needs a header with columns path,tags")
        out = []
        for row in reader:
            tags = row["tags"].replace("|", ";").split(";")
            out.append(Example(row["path"], frozenset(t.strip() for t in tags if t.strip())))
    return out


def read_label_list(path: str | os.PathLike) -> list[str]:
    """One label per line ('#' comments and blank lines skipped; CRLF tolerated)."""
    path = Path(path)
    if not path.is_file():
        raise TagscopeError(f"label list {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TagscopeError(f"{path} is not UTF-8 text: save it as UTF-8, one label per line") from None
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    return list(dict.fromkeys(names))


def label_matrix(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """``[N, C]`` int8 in {1, -1, 0}."""
    index = {name: j for j, name in enumerate(labels)}
    y = -np.ones((len(examples), len(labels)), dtype=np.int8)
    for i, ex in enumerate(examples):
        for name in ex.ignore:
            if name in index:
                y[i, index[name]] = 0
        for name in ex.labels:
            if name in index:
                y[i, index[name]] = 1
    return y


@dataclass
class Split:
    """Seen and unseen label lists; GZSL scores them together (seen first)."""

    seen: list[str]
    unseen: list[str]

    def __post_init__(self) -> None:
        overlap = set(self.seen) & set(self.unseen)
        if overlap:
            raise TagscopeError(f"labels both seen and unseen: {sorted(overlap)[:5]}")

    @property
    def all(self) -> list[str]:
        return self.seen + self.unseen


def nus_wide_split(taglist: str | os.PathLike, concepts: str | os.PathLike) -> Split:
    """The protocol's split: unseen = the 81 concepts; seen = the 1000 tags minus those (925)."""
    unseen = read_label_list(concepts)
    seen = [t for t in read_label_list(taglist) if t not in set(unseen)]
    return Split(seen, unseen)
