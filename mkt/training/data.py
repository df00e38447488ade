"""Data for training: a labelled folder as a torch data set, and NUS-WIDE's BiAM annotation files
converted to Tagscope's JSONL (:mod:`mkt.annotations`)."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import TagscopeError
from mkt.annotations import Example, label_matrix, nus_wide_split


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
        from core.media.stills import read_image

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
