"""The demo's model: MKT trained from the bundled CLIP on the synthetic world, shipped as
``synthetic-mkt`` (mkt/assets/synthetic-mkt.pt). One command regenerates it::

    tagscope synth mkt                      # = python -m mkt.training.demo_model

1. stage 1 from ``synthetic`` on 6,000 generated scenes and the world's SEEN labels (the 20
   compounds of ``synthetic_split(20, seed=0)`` held out), 20 epochs, distillation weight 0.03;
2. stage 2 (prompt tuning), 4 epochs; the weights stored as float16 (a few MB);
3. its relevance constants fitted on a validation set (seed ``EVAL_SEED + 1``, never the test
   set) for its seen labels, against known-absent texts (:data:`mkt.synthetic.ABSENT_TEXTS`), and
   its tag rules on the same set (``meta["tags"]``: a threshold and slope per seen label, a pooled
   rule for the others, :mod:`mkt.tag_calibration`);
4. the queries the demo suggests, chosen on that validation set: for each kind of text the labels
   whose matches were best there, seen ones and held-out ones (``meta["demo_queries"]``).

docs/search-quality.md has its figures (``python -m bench.relevance``) and the time it took.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import report_user_errors
from mkt.annotations import read_annotations
from mkt.bundle import load_bundle, save_bundle
from mkt.calibration import BACKGROUND_TEXTS, Constants, cutoff_value, statistics
from mkt.factory import SYNTHETIC_MKT_BUNDLE, model_from_bundle
from mkt.synthetic import ABSENT_TEXTS, EVAL_SEED, generate, synthetic_split
from mkt.synthetic.scenes import label_families
from mkt.training.calibrate import fit_bundle
from mkt.training.config import TrainConfig
from mkt.training.evaluate import predict
from mkt.training.train import train

log = logging.getLogger("mkt.training.demo_model")

TRAIN_N = 6000  # scenes: with 2,000 the unseen compounds stayed at the zero-shot CLIP's level (docs/mkt.md)
DISTILL_WEIGHT = 0.03  # as the results table (chosen on a validation set: docs/mkt-distill-selection.md)
UNSEEN = 20
VALIDATION_N = 1000
# How many suggestions of each kind the demo makes: (family, trained on it?) -> count
SUGGESTIONS = {("colour", True): 1, ("background", True): 1, ("compound", True): 2, ("compound", False): 2}


def recipe(stage: int, init: str, out: Path, work: Path, seed: int) -> TrainConfig:
    """The training config of one stage of the demo model."""
    return TrainConfig.for_stage(stage, init=init, out=str(out), train="synthetic",
                                 images=str(work / f"train-n{TRAIN_N}-seed{seed}"), synthetic_n=TRAIN_N,
                                 synthetic_unseen=UNSEEN, synthetic_seed=seed, synthetic_split_seed=0,
                                 augment="none", crop_scale=(0.9, 1.0), hflip=0.5, workers=1, seed=seed,
                                 log_every=200, template="a photo of a {label}.",
                                 distill_weight=DISTILL_WEIGHT if stage == 1 else None)


def as_float16(path: Path) -> None:
    """Store a bundle's weights as float16 (half the size; the model computes in float32)."""
    bundle = load_bundle(path)
    bundle.state_dict = {k: v.half() if v.is_floating_point() else v for k, v in bundle.state_dict.items()}
    save_bundle(bundle, path)


def validation_set(work: Path) -> Path:
    root = work / "validation"
    if not (root / "labels.jsonl").exists():
        generate(root, n=VALIDATION_N, seed=EVAL_SEED + 1)
    return root


def demo_queries(path: Path, validation: Path) -> list[dict[str, Any]]:
    """The demo's suggestions: per kind of text (:data:`SUGGESTIONS`), the labels whose matches
    had the best F1 on the validation set under the bundle's fitted constants."""
    bundle = load_bundle(path)
    model = model_from_bundle(bundle, f"mkt:{path}")
    constants, unseen = Constants.of(bundle.meta), set(synthetic_split(UNSEEN, seed=0).unseen)
    labels = [label for family in label_families().values() for label in family]
    examples = read_annotations(validation / "labels.jsonl")
    with torch.inference_mode():
        scores, truth = predict(model, validation, examples, labels, score="product")
        generic, _ = predict(model, validation, examples, list(BACKGROUND_TEXTS), score="product")
    background = generic.max(axis=1)
    family_of = {label: name for name, members in label_families().items() for label in members}
    ranked: dict[tuple[str, bool], list[tuple[float, str]]] = {}
    for j, label in enumerate(labels):
        value = cutoff_value(statistics(scores[:, j], background), constants)
        predicted = scores[:, j] >= value if value is not None else np.zeros(len(scores), bool)
        positive = truth[:, j] > 0
        f1 = 2 * float((predicted & positive).sum()) / max(int(predicted.sum() + positive.sum()), 1)
        ranked.setdefault((family_of[label], label not in unseen), []).append((-f1, label))
    out = []
    for (family, trained), count in SUGGESTIONS.items():
        for neg_f1, label in sorted(ranked[(family, trained)])[:count]:
            out.append({"text": label, "family": family, "trained": "seen" if trained else "held out",
                        "validation_f1": round(-neg_f1, 3)})
    return out


def build(out: Path, work: Path, seed: int, command: str = "tagscope synth mkt") -> dict[str, Any]:
    """Train, shrink, calibrate and annotate the demo model; returns what was recorded."""
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    stage1 = work / f"stage1-seed{seed}.pt"
    stage2 = work / f"stage2-seed{seed}.pt"  # its checkpoint and log stay in the work folder
    reused = [name for name, path in (("stage 1", stage1), ("stage 2", stage2)) if path.exists()]
    if not stage1.exists():  # stages already trained in the work folder are kept (delete it to start over)
        train(recipe(1, "synthetic", stage1, work, seed))
    if not stage2.exists():
        train(recipe(2, f"mkt:{stage1}", stage2, work, seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(stage2, out)
    as_float16(out)
    validation = validation_set(work)
    fitted = fit_bundle(str(out), str(validation), absent_texts=ABSENT_TEXTS)
    bundle = load_bundle(out)
    bundle.meta["demo_queries"] = demo_queries(out, validation)
    bundle.meta["build"] = {"command": command, "seed": seed, "train_n": TRAIN_N,
                            "seconds": round(time.time() - t0, 1), "reused": reused}
    save_bundle(bundle, out)
    tags = {k: bundle.meta["tags"][k] for k in ("pooled", "unseen_rule", "prior", "collection_slope")}
    return {"bundle": str(out), "version": bundle.version, "relevance": fitted,
            "tags": {**tags, **{k: bundle.meta["tags"]["diagnostics"][k] for k in ("cross_validated", "ece")}},
            **bundle.meta["build"],
            "demo_queries": bundle.meta["demo_queries"]}


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mkt.training.demo_model", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(SYNTHETIC_MKT_BUNDLE), help="bundle to write (default: the shipped one)")
    p.add_argument("--work", default="runs/synthetic-mkt", help="training data, stage 1 and the validation set")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("mkt.training.train").setLevel(logging.INFO)
    command = shlex.join(["python", "-m", "mkt.training.demo_model", *(sys.argv[1:] if argv is None else argv)])
    print(json.dumps(build(Path(args.out), Path(args.work), args.seed, command), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
