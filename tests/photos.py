"""The photo collections tests tag: the synthetic collection's labels, and subsets of it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_labels_jsonl(folder: Path) -> dict[str, list[str]]:
    lines = (folder / "labels.jsonl").read_text().splitlines()
    return {row["file"]: row["labels"] for row in map(json.loads, lines)}


def photos_subset(synthetic_photos: Path, folder: Path, n: int) -> Path:
    """``n`` photos of the shared synthetic collection in a folder of their own (hard links)."""
    folder.mkdir(parents=True)
    for name in sorted(read_labels_jsonl(synthetic_photos))[:n]:
        os.link(synthetic_photos / name, folder / name)
    return folder
