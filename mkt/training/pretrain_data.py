"""Training batches for contrastive pretraining on the synthetic world (:mod:`mkt.training.pretrain`).

A batch is minimal-pair groups of scenes (:func:`mkt.synthetic.sample_group`), rendered and
normalised, one caption per image drawn from its captions, optionally the prompt of every label,
and the matrix of which caption is true of which image (every true caption is a positive).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mkt import synthetic as world

# Probability of each caption kind of world.caption_facts: full description, objects only,
# one compound, one shape, one colour, the background.
CAPTION_P = (0.35, 0.1, 0.15, 0.15, 0.1, 0.15)
# The same for web-style captions (world.main_caption_facts): compound, compound on background,
# shape, colour, background; all of them about the main object only.
WEB_CAPTION_P = (0.5, 0.2, 0.1, 0.1, 0.1)
CAPTION_STYLES = ("full", "web")
# Probability of each minimal-pair group kind of world.GROUP_KINDS: shape, background, colour, random.
GROUP_P = (0.25, 0.25, 0.25, 0.25)
GROUP_SIZE = 4  # scenes per minimal-pair group
N_SIMPLE = len(world.COLOURS) + len(world.SHAPES) + len(world.BACKGROUNDS)  # colour/shape/background labels


# -- batches --------------------------------------------------------------------------------------
class FactIndex:
    """Maps caption facts to columns, so "caption j is true of image i" is a matrix product."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}

    def encode(self, fact_sets: Sequence[set | frozenset]) -> np.ndarray:
        for facts in fact_sets:
            for f in facts:
                self.ids.setdefault(f, len(self.ids))
        m = np.zeros((len(fact_sets), len(self.ids)), dtype=np.float32)
        for i, facts in enumerate(fact_sets):
            m[i, [self.ids[f] for f in facts]] = 1.0
        return m


def positives(scene_fact_sets: Sequence[set], caption_fact_sets: Sequence[frozenset], index: FactIndex
              ) -> np.ndarray:
    """``[B, B]`` bool: caption j states only facts that are true of image i."""
    caps = index.encode(caption_fact_sets)
    imgs = index.encode(scene_fact_sets)
    caps = np.pad(caps, ((0, 0), (0, len(index.ids) - caps.shape[1])))
    missing = caps @ (1.0 - imgs).T  # [B_cap, B_img]: facts of caption j not true of image i
    return (missing.T == 0)


class BatchMaker:
    """Deterministic batches of (pixels, tokens, positives) drawn from one numpy Generator."""

    def __init__(self, seed: int, batch_size: int, tokenizer: Any, mean: Sequence[float], std: Sequence[float],
                 captions: str = "full", label_prompt: str | None = None) -> None:
        if captions not in CAPTION_STYLES:
            raise ValueError(f"captions must be one of {CAPTION_STYLES}, not {captions!r}")
        full = captions == "full"
        # "full": captions may describe every object, and an image's positives are all captions true of
        # it; "web": captions name the main object only, and so do the facts that make a positive.
        self.caption_fn = world.caption_facts if full else world.main_caption_facts
        self.image_facts = world.scene_facts if full else world.main_facts
        caption_p = CAPTION_P if full else WEB_CAPTION_P
        # With a label prompt, every batch also holds the prompt of every label of the world, as extra texts.
        self.prompt_texts = [label_prompt.format(label=x) for x in world.all_labels()] if label_prompt else []
        self.prompt_facts = world.label_facts() if label_prompt else []
        self.caption_p = np.array(caption_p, dtype=np.float64) / np.sum(caption_p)
        self.group_p = np.array(GROUP_P, dtype=np.float64) / np.sum(GROUP_P)
        self.rng = np.random.default_rng(seed)
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        self.mean = np.array(mean, dtype=np.float32) * 255.0
        self.std = np.array(std, dtype=np.float32) * 255.0
        self.token_cache: dict[str, torch.Tensor] = {}
        self.facts = FactIndex()
        self.simple_facts = world.label_facts()[:N_SIMPLE]  # colour, shape, background labels

    def _tokens(self, texts: Sequence[str]) -> torch.Tensor:
        new = [t for t in dict.fromkeys(texts) if t not in self.token_cache]
        if new:
            for t, row in zip(new, self.tokenizer(new)):
                self.token_cache[t] = row
        return torch.stack([self.token_cache[t] for t in texts])

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pixels [B,3,H,W], caption tokens, positives [B, texts] and the colour/shape/background
        label presence [B, 26] that the warm-up read-out predicts."""
        rng = self.rng
        scenes: list[world.Scene] = []
        while len(scenes) < self.batch_size:
            kind = world.GROUP_KINDS[rng.choice(len(world.GROUP_KINDS), p=self.group_p)]
            scenes.extend(world.sample_group(rng, GROUP_SIZE, kind))
        scenes = scenes[:self.batch_size]
        pixels = np.stack([world.render_array(s, rng) for s in scenes]).astype(np.float32)
        pixels = (pixels - self.mean) / self.std  # == the eval transform on a 64x64 image
        texts, cap_facts = [], []
        for s in scenes:
            options = self.caption_fn(s, rng)
            text, facts = options[rng.choice(len(options), p=self.caption_p)]
            texts.append(text)
            cap_facts.append(facts)
        texts += self.prompt_texts
        cap_facts += self.prompt_facts
        image_facts = [self.image_facts(s) for s in scenes]
        pos = positives(image_facts, cap_facts, self.facts)
        simple = np.array([[f <= facts for f in self.simple_facts] for facts in image_facts], dtype=np.float32)
        return (torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), self._tokens(texts),
                torch.from_numpy(pos), torch.from_numpy(simple))
