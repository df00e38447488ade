"""Evidence maps on the synthetic world: does the best patch lie on the tagged object?

    python -m bench.evidence --model mkt:BUNDLE.pt [--n 1000] [--top 5]

Regenerates the held-out scenes (the results table's evaluation seed) with their objects' grid
cells, scores every photo against the world's labels with the model's stored score, and for
each correct compound tag (a true colour-shape label among the photo's ``--top`` best labels)
asks :func:`indexer.search.evidence.patch_evidence` for the map (the vocabulary: the world's 126
labels): a hit when its best patch is the labelled object's cell (each object lies inside one
16-px cell = one ViT patch). Reports the hit rate over all correct compound tags and over the
unseen ones (target: >= 80%), for the shipped map and for raw patch cosines.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from indexer.search.evidence import patch_evidence
from mkt.factory import create_tag_model
from mkt.synthetic import EVAL_SEED, synthetic_split
from mkt.synthetic.captions import scene_captions
from mkt.synthetic.render import render
from mkt.synthetic.scenes import all_labels, compound_label, label_families, sample_scene


def scenes(n: int, seed: int) -> list:
    """(scene, image) pairs exactly as :func:`mkt.synthetic.generate` draws them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        scene = sample_scene(rng)
        image = render(scene, rng)
        scene_captions(scene, rng)
        out.append((scene, image))
    return out


@torch.inference_mode()
def measure(spec: str, n: int, top: int, raw: bool = False) -> dict[str, float]:
    model = create_tag_model(spec)
    labels = all_labels()
    compounds = set(label_families()["compound"])
    unseen = set(synthetic_split(20, seed=0).unseen)
    label_emb = model.encode_labels(labels)
    hits = {"all": [0, 0], "unseen": [0, 0]}
    pairs = scenes(n, EVAL_SEED)
    for start in range(0, n, 64):
        batch = pairs[start:start + 64]
        pixels = torch.stack([model.preprocess(image) for _, image in batch])
        emb = model.encode_images(pixels, with_patches=True)
        scores = model.score(emb, label_emb)
        for (scene, _), row, patches in zip(batch, scores, emb.patches):
            best = {labels[j] for j in row.topk(top).indices.tolist()}
            for obj in scene.objects:
                label = compound_label(obj.colour, obj.shape)
                if label not in best or label not in compounds:
                    continue  # only correct compound tags
                found = patch_evidence(model, patches.numpy(), label_emb[labels.index(label)][None], label,
                                       None if raw else label_emb)
                hit = found.best_cell() == obj.cell
                for key in ("all", "unseen") if label in unseen else ("all",):
                    hits[key][0] += hit
                    hits[key][1] += 1
    return {f"{key}_hit_rate": h / max(t, 1) for key, (h, t) in hits.items()} | {
        f"{key}_tags": t for key, (_, t) in hits.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, help="an MKT bundle spec (repeat)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--top", type=int, default=5, help="a photo's tags: its best this many labels")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    for spec in args.model:
        for raw in (True, False):
            result = measure(spec, args.n, args.top, raw)
            print(json.dumps({"model": spec, "n": args.n, "top": args.top,
                              "map": "raw cosine" if raw else "share among the vocabulary (shipped)", **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
