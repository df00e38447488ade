"""People's verdicts as training data: ``tagscope feedback export`` writes them as an annotation
file that ``tagscope train`` reads.

One JSONL line per photo with a verdict: ``labels`` (confirmed: positives), ``negatives``
(rejected) and ``ignore`` (the other labels that have a verdict somewhere: unknown for this
photo, so training neither rewards nor punishes them). A labels file next to it lists every
label with a verdict: the ``--seen`` list to train on.
"""

from __future__ import annotations

import json
from pathlib import Path

from core import feedback
from core.atomic import atomic_write
from core.db import Database


def export_training(db: Database, out: Path) -> dict[str, int | str]:
    """Write the annotation file ``out`` and ``<out>.labels.txt``; returns counts and paths."""
    photos = list(feedback.rows(db))
    vocabulary = sorted({label for _, _, verdicts in photos for label, _ in verdicts})
    lines = []
    for _, path, verdicts in photos:
        positives = sorted(label for label, v in verdicts if v == feedback.CONFIRM)
        negatives = sorted(label for label, v in verdicts if v == feedback.REJECT)
        known = set(positives) | set(negatives)
        lines.append(json.dumps({"file": path, "labels": positives, "negatives": negatives,
                                 "ignore": [label for label in vocabulary if label not in known]}, ensure_ascii=False))
    labels_path = out.with_name(out.name + ".labels.txt")
    atomic_write(out, lambda tmp: Path(tmp).write_text("".join(line + "\n" for line in lines), encoding="utf-8"))
    atomic_write(labels_path, lambda tmp: Path(tmp).write_text("".join(v + "\n" for v in vocabulary), encoding="utf-8"))
    return {"photos": len(lines), "labels": len(vocabulary), "annotations": str(out), "seen": str(labels_path)}
