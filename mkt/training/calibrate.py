"""Fit a bundle's relevance constants (:mod:`mkt.calibration`) and its tag rules
(:mod:`mkt.tag_calibration`) on annotated photos and store them.

    python -m mkt.training.calibrate BUNDLE.pt --images VALIDATION_FOLDER [--labels SEEN.txt] [--absent TEXTS.txt]
        [--absent-world] [--tags-only]

The folder holds photos and ``labels.jsonl`` (never the test set). Only the labels the bundle was
trained on are used (its ``seen`` family), so labels it never saw keep the constants fitted on the
ones it did. Known-absent cases come from the same labels (each on the folder without its own
photos) and from ``--absent``: texts that name nothing in the folder, which must match nothing.
The tag rules (``meta["tags"]``) are fitted on the same folder: a threshold and a slope per seen
label, a pooled rule for the rest (``--tags-only`` fits only these, keeping the relevance constants).
The bundle file is rewritten with the constants in its ``meta``; its version (the scores it
produces) does not change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from mkt import tag_calibration
from mkt.annotations import read_annotations, read_label_list
from mkt.bundle import Bundle, load_bundle, save_bundle
from mkt.calibration import BACKGROUND_TEXTS, Constants, fit
from mkt.factory import model_from_bundle
from mkt.tagmodel import TagModel
from mkt.training.evaluate import predict


def seen_labels(bundle: Bundle) -> list[str]:
    """The labels a bundle was trained on: its ``seen`` family (MKT bundles record their split),
    else its whole vocabulary."""
    families = bundle.label_families or {}
    return list(families.get("seen") or bundle.labels)


def fit_bundle(path: str, images: str, labels: Sequence[str] | None = None,
               absent_texts: Sequence[str] = ()) -> dict[str, float]:
    """Fit a bundle's constants on an annotated folder (``labels.jsonl``) for its own labels (the
    ones it was trained on) and against ``absent_texts`` (naming nothing there), and store them
    in its ``meta["relevance"]``; its tag rules (:func:`tag_rules`) in ``meta["tags"]``."""
    bundle = load_bundle(path)
    model = model_from_bundle(bundle, f"mkt:{path}")
    examples = read_annotations(Path(images) / "labels.jsonl")
    labels = list(labels or seen_labels(bundle))
    with torch.inference_mode():
        scores, truth = predict(model, images, examples, labels, score="product")
        generic, _ = predict(model, images, examples, list(BACKGROUND_TEXTS), score="product")
        absent = predict(model, images, examples, list(absent_texts), score="product")[0] if absent_texts else None
    result = fit(scores, truth > 0, generic.max(axis=1), absent)
    bundle.meta["relevance"] = {**result, "fitted_on": str(images)}
    bundle.meta["tags"] = tag_rules(bundle, model, images, labels, Constants.of(bundle.meta))
    _save_meta(bundle, path)
    return result


def fit_tags(path: str, images: str, labels: Sequence[str] | None = None) -> dict:
    """Fit only a bundle's tag rules (``meta["tags"]``) on an annotated folder, its relevance
    constants kept; returns the block stored."""
    bundle = load_bundle(path)
    model = model_from_bundle(bundle, f"mkt:{path}")
    bundle.meta["tags"] = tag_rules(bundle, model, images, list(labels or seen_labels(bundle)),
                                    Constants.of(bundle.meta))
    _save_meta(bundle, path)
    return bundle.meta["tags"]


def tag_rules(bundle: Bundle, model: TagModel, images: str, labels: Sequence[str], constants: Constants) -> dict:
    """``meta["tags"]`` (:func:`mkt.tag_calibration.fit`) on the folder: per-label rules for
    ``labels`` less the ones the bundle held out of its training (unseen stay unseen), the photos'
    stored tags being their best over the bundle's whole vocabulary."""
    held_out = {" ".join(x.lower().split()) for x in (bundle.label_families or {}).get("unseen", ())}
    fitted = [x for x in labels if " ".join(x.lower().split()) not in held_out]
    vocabulary = list(dict.fromkeys([*bundle.labels, *fitted]))
    examples = read_annotations(Path(images) / "labels.jsonl")
    with torch.inference_mode():
        scores, truth = predict(model, images, examples, vocabulary, score="product")
        generic, _ = predict(model, images, examples, list(BACKGROUND_TEXTS), score="product")
    keep = tag_calibration.stored(scores)
    cols = [vocabulary.index(x) for x in fitted]
    return tag_calibration.fit(scores[:, cols], truth[:, cols] > 0, fitted, background=generic.max(axis=1),
                               constants=constants, keep=keep[:, cols], fitted_on=str(images))


def _save_meta(bundle: Bundle, path: str) -> None:
    version = bundle.version
    save_bundle(bundle, path)
    assert bundle.version == version, "calibration must not change a bundle's version"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mkt.training.calibrate", description=__doc__.split("\n")[0])
    p.add_argument("bundle", help="an MKT bundle file (.pt); rewritten with the fitted constants")
    p.add_argument("--images", required=True, help="an annotated folder (labels.jsonl), NOT the test set")
    p.add_argument("--labels", help="a file of the labels to fit on, one per line (default: the bundle's seen labels)")
    p.add_argument("--absent", help="a file of texts that name nothing in the folder, one per line")
    p.add_argument("--tags-only", action="store_true",
                   help="fit only the tag rules (meta['tags']), keeping the relevance constants")
    p.add_argument("--absent-world", action="store_true",
                   help="the folder is of the synthetic world: use its known-absent texts (mkt.synthetic.ABSENT_TEXTS)")
    args = p.parse_args(argv)
    labels = read_label_list(args.labels) if args.labels else None
    absent = read_label_list(args.absent) if args.absent else ()
    if args.absent_world:
        from mkt.synthetic import ABSENT_TEXTS

        absent = (*absent, *ABSENT_TEXTS)
    if args.tags_only:
        tags = fit_tags(args.bundle, args.images, labels)
        print(json.dumps({k: v for k, v in tags.items() if k != "labels"}))
        return 0
    print(json.dumps(fit_bundle(args.bundle, args.images, labels, absent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
