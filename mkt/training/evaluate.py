"""Evaluation of tag models: one scoring function, one set of metrics, two protocols.

- ZSL and GZSL as the paper's protocol computes them (:func:`evaluate`, ``tagscope eval``):
  ZSL ranks only the unseen labels; GZSL ranks seen and unseen together. Metrics: mAP over all
  labels (labels without positives count 0) and overall F1 / precision / recall at K
  (:mod:`mkt.training.metrics`).
- Zero-shot quality per label family on fresh scenes of the synthetic world
  (:func:`zero_shot_by_family`): mAP, chance and precision at 10 per family.

Scores (:func:`score_batch`):

- ``paper``: MKT's two-stream score with label-axis normalisation (unnormalised projected
  features, as the official code); for a plain CLIP bundle, the cosine of global embeddings;
- ``product``: the label-independent score the tagger stores (:meth:`TagModel.score`);
- ``two-stream``: the paper's score for any model, a plain CLIP included (k scaled to its
  patch count), to separate what the score does from what training does.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from core.errors import TagscopeError, report_user_errors
from mkt import synthetic as world
from mkt.annotations import Example, Split, read_annotations, read_label_list
from mkt.factory import create_tag_model
from mkt.tagmodel import TagModel
from mkt.training.data import LabelledImages
from mkt.training.metrics import f1_at_k, mean_average_precision
from mkt.training.model import default_top_k, two_stream_scores, vision_features

SCORES = ("paper", "product", "two-stream")


# -- scoring ----------------------------------------------------------------------------------
def score_batch(model: TagModel, pixels: torch.Tensor, label_emb: torch.Tensor, score: str = "paper"
                ) -> torch.Tensor:
    """Scores ``[B, C]`` (float32, on the CPU) of a preprocessed batch against label embeddings."""
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
    return s.float().cpu()


@torch.inference_mode()
def predict(model: TagModel, root: str | Path, examples: Sequence[Example], labels: Sequence[str],
            score: str = "paper", batch_size: int = 64, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores and annotations ``[N, C]`` for ``labels`` on the images of ``examples``."""
    dataset = LabelledImages(root, examples, labels, model.preprocess)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    label_emb = model.encode_labels(list(labels))
    out_scores, out_labels = [], []
    for pixels, targets in loader:
        out_scores.append(score_batch(model, pixels.to(model.device), label_emb, score))
        out_labels.append(targets)
    return torch.cat(out_scores).numpy(), torch.cat(out_labels).numpy()


# -- metrics ----------------------------------------------------------------------------------
def metrics(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (3, 5)) -> dict[str, float]:
    row: dict[str, float] = {"map": mean_average_precision(scores, labels)}
    for k in ks:
        if k <= scores.shape[1]:
            f1, p, r = f1_at_k(scores, labels, k)
            row.update({f"f1@{k}": f1, f"p@{k}": p, f"r@{k}": r})
    return row


def label_precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean over labels of the fraction of positives among the ``k`` best-scored images."""
    top = np.argsort(-scores, axis=0, kind="stable")[:k]
    return float(np.mean(np.take_along_axis(labels, top, axis=0) == 1))


def family_metrics(scores: np.ndarray, labels: np.ndarray, families: dict[str, list[str]]
                   ) -> dict[str, dict[str, float]]:
    """Per family (its columns, in order, consecutive): ``map``, ``chance`` (the mean positive
    rate, the mAP of a random ranking), ``precision_at_10`` and ``chance_at_10``; rounded to 4 places."""
    out: dict[str, dict[str, float]] = {}
    start = 0
    for family, names in families.items():
        cols = slice(start, start + len(names))
        start += len(names)
        fs, fy = scores[:, cols], labels[:, cols]
        chance = float(np.mean(fy == 1))
        out[family] = {
            "map": round(mean_average_precision(fs, fy), 4),
            "chance": round(chance, 4),
            "precision_at_10": round(label_precision_at_k(fs, fy, 10), 4),
            "chance_at_10": round(chance, 4),
        }
    return out


# -- protocols --------------------------------------------------------------------------------
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


@contextmanager
def _prompt_template(model: TagModel, template: str | None) -> Iterator[str | None]:
    """Score with ``template`` (None: the model's own) for the duration; yields the template used."""
    old = getattr(model, "template", None)
    if template is not None:
        model.template = template
    try:
        yield template or old
    finally:
        if template is not None:
            model.template = old


@torch.inference_mode()
def zero_shot_by_family(model: TagModel, n: int = 500, seed: int = world.EVAL_SEED, batch_size: int = 128,
                        template: str | None = None, score: str = "product") -> dict[str, Any]:
    """Zero-shot tagging quality of ``model`` per label family of the synthetic world.

    Renders ``n`` fresh scenes from ``seed``, runs them through the model's own ``preprocess``,
    scores every label of :func:`mkt.synthetic.all_labels` with :func:`score_batch` (by default
    the product score, :meth:`TagModel.score`; the labels through the model's prompt, or
    ``template`` for this call) and reports :func:`family_metrics`.
    """
    rng = np.random.default_rng(seed)
    scenes = [world.sample_scene(rng) for _ in range(n)]
    labels = world.all_labels()
    with _prompt_template(model, template) as used:
        label_emb = model.encode_labels(labels)
        scores = []
        for start in range(0, n, batch_size):
            chunk = scenes[start:start + batch_size]
            pixels = torch.stack([model.preprocess(world.render(s, rng)) for s in chunk]).to(model.device)
            scores.append(score_batch(model, pixels, label_emb, score))
    s = torch.cat(scores).numpy()
    families = family_metrics(s, world.label_matrix(scenes, labels), world.label_families())
    return {"n": n, "seed": seed, "template": used, "families": families}


# -- tagscope eval ----------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
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
    return p


def _test_set(args: argparse.Namespace) -> tuple[Path, list[Example], Split]:
    """The images folder, annotations and split that ``args`` name (generated for ``--data synthetic``)."""
    if args.data == "synthetic":
        root = Path(tempfile.mkdtemp(prefix="tagscope-eval-"))
        world.generate(root, n=args.synthetic_n, seed=world.EVAL_SEED)
        split = world.synthetic_split(args.synthetic_unseen, seed=args.synthetic_seed)
        return root, read_annotations(root / "labels.jsonl"), split
    if not (args.data and args.images and args.seen and args.unseen):
        raise TagscopeError("eval needs --data ANNOTATIONS --images FOLDER --seen FILE --unseen FILE "
                            "(or --data synthetic)")
    return Path(args.images), read_annotations(args.data), Split(read_label_list(args.seen),
                                                                 read_label_list(args.unseen))


def _print_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(f"{args.model}: {result['images']} images, {result['seen']} seen / {result['unseen']} unseen labels "
          f"({args.score} score)")
    for setting in ("zsl", "gzsl"):
        if setting in result:
            m = result[setting]
            ks = "  ".join(f"F1@{k} {100 * m[f'f1@{k}']:.1f} (P {100 * m[f'p@{k}']:.1f}, R {100 * m[f'r@{k}']:.1f})"
                           for k in args.k if f"f1@{k}" in m)
            print(f"  {setting.upper():4s} mAP {100 * m['map']:.1f}  {ks}")


@report_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """``tagscope eval``: ZSL/GZSL metrics of a model on a labelled set."""
    args = _parser().parse_args(argv)
    model = create_tag_model(args.model, device=args.device)
    root, examples, split = _test_set(args)
    result = evaluate(model, root, examples, split, args.score, args.k, args.batch_size)
    if args.json:
        print(json.dumps(result))
    else:
        _print_result(args, result)
    return 0
