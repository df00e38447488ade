"""Multi-label data sets for MKT training and evaluation, in one simple format.

Annotations are JSONL, one image per line (the synthetic world's ``labels.jsonl`` is one)::

    {"file": "Flickr/beach/0001_2124494179.jpg", "labels": ["sky", "beach"], "ignore": ["water"]}

``file`` is relative to the images folder; labels listed are positive (+1), labels in
``ignore`` are left out of losses and metrics (0), every other label of the split is negative
(-1). A CSV with a header ``path,tags`` (tags separated by ``;`` or ``|``) works too.
A split is two label lists: SEEN (trained on) and UNSEEN (held out), one label per line.

- NUS-WIDE (the protocol's 925 seen / 81 unseen): :func:`nus_wide_split` from the dataset's
  TagList1k.txt and Concepts81.txt, and :func:`convert_biam` for BiAM's h5 annotation files.
- Any labelled folder: :func:`read_annotations` + :func:`read_label_list`.
- The synthetic world: :func:`mkt.synthetic.synthetic_split` holds out compound labels.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

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


class LabelledImages(Dataset):
    """Images under ``root`` with an annotation matrix; yields ``(pixels, labels[C])``."""

    def __init__(self, root: str | os.PathLike, examples: Sequence[Example], labels: Sequence[str],
                 transform: Callable[[Any], torch.Tensor]) -> None:
        self.root = Path(root)
        self.examples = list(examples)
        self.labels = list(labels)
        self.targets = torch.from_numpy(label_matrix(self.examples, self.labels).astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from core.images import read_image

        image, _, _ = read_image(str(self.root / self.examples[i].file))
        return self.transform(image), self.targets[i]


def convert_biam(features_dir: str | os.PathLike, names_dir: str | os.PathLike, taglist: str | os.PathLike,
                 concepts: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, int]:
    """Convert BiAM's NUS-WIDE annotations to Tagscope JSONL.

    Inputs (as the BiAM/MKT releases lay them out): ``features_dir/nus_wide_train.h5`` and
    ``nus_wide_test.h5`` with datasets ``<name>-labels`` (train: 925 seen labels; test: 1006 =
    925 seen + 81 unseen) and, for test, ``<name>-labels_81``; ``names_dir/img_names.pkl`` and
    ``test_img_names.pkl`` (``{"img_names": [...]}``). An image name ``actor_0001_2124494179.jpg``
    lives at ``Flickr/actor/0001_2124494179.jpg``. Label vectors follow the order of
    :func:`nus_wide_split` (seen in TagList1k order, then Concepts81); values 1 positive,
    0 or -1 negative as BiAM stores them. Writes ``train.jsonl``, ``test.jsonl``, ``seen.txt``,
    ``unseen.txt`` to ``out_dir``.
    """
    try:
        import h5py
    except ImportError:
        raise TagscopeError("converting BiAM files needs h5py: pip install h5py") from None
    split = nus_wide_split(taglist, concepts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seen.txt").write_text("\n".join(split.seen) + "\n", encoding="utf-8")
    (out / "unseen.txt").write_text("\n".join(split.unseen) + "\n", encoding="utf-8")
    counts = {}
    for part, h5_name, pkl_name, label_names in [
        ("train", "nus_wide_train.h5", "img_names.pkl", split.seen),
        ("test", "nus_wide_test.h5", "test_img_names.pkl", split.all),
    ]:
        with open(Path(names_dir) / pkl_name, "rb") as fh:
            names = pickle.load(fh)["img_names"]  # a file from the dataset release the user trusts
        lines = []
        with h5py.File(Path(features_dir) / h5_name, "r") as h5:
            for name in names:
                vec = np.asarray(h5[f"{name}-labels"]).reshape(-1)
                if len(vec) != len(label_names):
                    raise TagscopeError(f"{h5_name}: {name} has {len(vec)} labels, expected {len(label_names)}: "
                                        "check TagList1k.txt and Concepts81.txt are the dataset's own")
                parts = name.split("_")
                file = "/".join(["Flickr", "_".join(parts[:-2]), "_".join(parts[-2:])])
                labels = [label_names[j] for j in np.flatnonzero(vec == 1)]
                lines.append(json.dumps({"file": file, "labels": labels}))
        (out / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[part] = len(lines)
    return counts
