"""ZSL and GZSL evaluation as the paper's protocol computes it.

ZSL ranks only the unseen labels; GZSL ranks seen and unseen together. Metrics: mAP over all
labels (labels without positives count 0) and overall F1 / precision / recall at K
(:mod:`mkt.metrics`). Scores:

- ``paper``: MKT's two-stream score with label-axis normalisation (unnormalised projected
  features, as the official code); for a plain CLIP bundle, the cosine of global embeddings;
- ``product``: the label-independent score the tagger stores (:meth:`TagModel.score`);
- ``two-stream``: the paper's score for any model, a plain CLIP included (k scaled to its
  patch count), to separate what the score does from what training does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mkt.data import Example, LabelledImages, Split
from mkt.metrics import f1_at_k, mean_average_precision
from mkt.model import default_top_k, two_stream_scores, vision_features
from mkt.tagmodel import TagModel

SCORES = ("paper", "product", "two-stream")


@torch.inference_mode()
def predict(model: TagModel, root: str | Path, examples: Sequence[Example], labels: Sequence[str],
            score: str = "paper", batch_size: int = 64, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores and annotations ``[N, C]`` for ``labels`` on the images of ``examples``."""
    dataset = LabelledImages(root, examples, labels, model.preprocess)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    label_emb = model.encode_labels(list(labels))
    device = model.device
    out_scores, out_labels = [], []
    for pixels, targets in loader:
        pixels = pixels.to(device)
        if score == "product":
            s = model.score(model.encode_images(pixels), label_emb)
        elif score == "two-stream" or (score == "paper" and model.kind == "mkt"):
            g, p = vision_features(model.clip.visual, pixels)
            k = model.local_top_k if model.kind == "mkt" else default_top_k(p.shape[1])
            s = two_stream_scores(g.float(), p.float(), label_emb, max(1, k), label_norm=True, global_only=k <= 0)
        elif score == "paper":  # zero-shot CLIP: cosine similarity of the global embeddings
            s = F.normalize(model.clip.visual(pixels).float(), dim=-1) @ label_emb.T
        else:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        out_scores.append(s.float().cpu())
        out_labels.append(targets)
    return torch.cat(out_scores).numpy(), torch.cat(out_labels).numpy()


def metrics(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (3, 5)) -> dict[str, float]:
    row: dict[str, float] = {"map": mean_average_precision(scores, labels)}
    for k in ks:
        if k <= scores.shape[1]:
            f1, p, r = f1_at_k(scores, labels, k)
            row.update({f"f1@{k}": f1, f"p@{k}": p, f"r@{k}": r})
    return row


def evaluate(model: TagModel, root: str | Path, examples: Sequence[Example], split: Split, score: str = "paper",
             ks: Sequence[int] = (3, 5), batch_size: int = 64, workers: int = 0) -> dict[str, Any]:
    """``{"zsl": {...}, "gzsl": {...}}`` with mAP and F1/P/R@K, as fractions."""
    scores, labels = predict(model, root, examples, split.all, score, batch_size, workers)
    n_seen = len(split.seen)
    result: dict[str, Any] = {"images": len(examples), "seen": n_seen, "unseen": len(split.unseen)}
    if split.unseen:
        result["zsl"] = metrics(scores[:, n_seen:], labels[:, n_seen:], ks)
    result["gzsl"] = metrics(scores, labels, ks)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``tagscope eval``: ZSL/GZSL metrics of a model on a labelled set."""
    import argparse
    import json
    import sys

    from mkt.data import read_annotations, read_label_list, synthetic_split
    from mkt.errors import TagscopeError
    from mkt.factory import create_tag_model

    p = argparse.ArgumentParser(prog="tagscope eval", description=main.__doc__)
    p.add_argument("--model", required=True, help="model spec, e.g. mkt:runs/mkt.pt or synthetic")
    p.add_argument("--data", default="", help="test annotations (JSONL/CSV), or 'synthetic'")
    p.add_argument("--images", default="", help="folder the annotation paths are relative to")
    p.add_argument("--seen", default="", help="seen labels file")
    p.add_argument("--unseen", default="", help="unseen labels file")
    p.add_argument("--synthetic-n", type=int, default=1000)
    p.add_argument("--synthetic-unseen", type=int, default=20)
    p.add_argument("--synthetic-seed", type=int, default=0, help="seed of the seen/unseen split")
    p.add_argument("--score", choices=SCORES, default="paper")
    p.add_argument("--k", type=int, nargs="+", default=[3, 5])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        model = create_tag_model(args.model, device=args.device)
        if args.data == "synthetic":
            import tempfile

            from mkt.synthetic import EVAL_SEED, generate

            root = Path(tempfile.mkdtemp(prefix="tagscope-eval-"))
            generate(root, n=args.synthetic_n, seed=EVAL_SEED)
            examples = read_annotations(root / "labels.jsonl")
            split = synthetic_split(args.synthetic_unseen, seed=args.synthetic_seed)
        else:
            if not (args.data and args.images and args.seen and args.unseen):
                raise TagscopeError("eval needs --data ANNOTATIONS --images FOLDER --seen FILE --unseen FILE "
                                    "(or --data synthetic)")
            root, examples = Path(args.images), read_annotations(args.data)
            split = Split(read_label_list(args.seen), read_label_list(args.unseen))
        result = evaluate(model, root, examples, split, args.score, args.k, args.batch_size)
    except TagscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.model}: {result['images']} images, {result['seen']} seen / {result['unseen']} unseen labels "
          f"({args.score} score)")
    for setting in ("zsl", "gzsl"):
        if setting in result:
            m = result[setting]
            ks = "  ".join(f"F1@{k} {100 * m[f'f1@{k}']:.1f} (P {100 * m[f'p@{k}']:.1f}, R {100 * m[f'r@{k}']:.1f})"
                           for k in args.k if f"f1@{k}" in m)
            print(f"  {setting.upper():4s} mAP {100 * m['map']:.1f}  {ks}")
    return 0
