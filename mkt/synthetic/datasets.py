"""Data sets of the synthetic world: image folders with ``labels.jsonl``, label matrices, the
seen/unseen split, and the seed of the evaluation scenes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mkt import annotations as data
from mkt.synthetic.captions import scene_captions
from mkt.synthetic.render import render
from mkt.synthetic.scenes import COLOURS, SHAPES, Scene, compound_label, label_families, sample_scene

EVAL_SEED = 20_240_601  # the scenes of zero-shot evaluation; never used for training data
DEMO_SEED = 0  # the demo collection (`tagscope demo`): MKT trains on seeds 1000+, validates on EVAL_SEED + 1


def generate(out_dir: str | Path, n: int, seed: int) -> Path:
    """Write ``n`` images (``000000.png`` ...) and ``labels.jsonl`` into ``out_dir``; returns its path.

    Each line of labels.jsonl: ``{"file": "000123.png", "labels": [...], "caption": "..."}``.
    The output is byte-identical for the same ``n`` and ``seed``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = max(6, len(str(max(n - 1, 0))))
    lines = []
    for i in range(n):
        scene = sample_scene(rng)
        name = f"{i:0{width}d}.png"
        render(scene, rng).save(out / name, format="PNG")
        caption = scene_captions(scene, rng)[0]
        lines.append(json.dumps({"file": name, "labels": scene.labels(), "caption": caption}))
    (out / "labels.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def label_matrix(scenes: Sequence[Scene], labels: Sequence[str]) -> np.ndarray:
    """``[N, L]`` int8 annotations in {1, -1} (the metrics' convention)."""
    return data.label_matrix([data.Example("", frozenset(scene.labels())) for scene in scenes], labels)


# Texts that name nothing in the world (no such objects, or colours on objects that do not exist
# here): the known-absent texts a model's relevance constants are fitted against
# (mkt.calibration.fit). Never the texts a benchmark measures with.
ABSENT_TEXTS = ("a cat", "a car", "a tree", "a person", "a mountain lake", "a birthday cake", "a bicycle",
                "an invoice", "a city street at night", "a yellow taxi", "a green bottle", "a wooden table")


def synthetic_split(n_unseen: int = 20, seed: int = 0) -> data.Split:
    """Hold out ``n_unseen`` colour-shape compounds such that every colour and every shape still
    occurs in some seen compound (so the unseen ones are new combinations of known parts)."""
    families = label_families()
    rng = np.random.default_rng(seed)
    # A Latin-square style pick: two per colour, each shape twice, so no part is lost.
    pairs = []
    offsets = rng.permutation(len(SHAPES))
    for round_ in range(max(1, -(-n_unseen // len(COLOURS)))):
        for ci, colour in enumerate(COLOURS):
            shape = SHAPES[(offsets[round_ % len(offsets)] + ci + round_ * 3) % len(SHAPES)]
            pairs.append(compound_label(colour, shape))
    unseen = list(dict.fromkeys(pairs))[:n_unseen]
    seen = [label for fam in families.values() for label in fam if label not in set(unseen)]
    return data.Split(seen, unseen)
