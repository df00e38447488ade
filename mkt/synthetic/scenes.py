"""Scenes of the synthetic world: its vocabulary, its labels, random scenes and minimal-pair groups.

A scene is a textured background with 1-3 coloured shapes on a 4x4 grid of 16x16 cells, one
object per cell (= one ViT patch). Everything is drawn from an explicit
``numpy.random.Generator``: same seed, same scenes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
CELL = 16  # = the ViT patch size: every object sits inside exactly one patch
GRID = IMAGE_SIZE // CELL

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "heart", "crescent", "arrow")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "white", "black")
BACKGROUNDS = ("plain", "striped", "dotted", "checkered", "gradient", "noisy")
SIZES = ("small", "large")
SIZE_PX = {"small": 10, "large": 14}
OBJECT_COUNT_P = (0.3, 0.4, 0.3)  # 1, 2 or 3 objects

COLOUR_RGB = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 225, 30),
    "green": (40, 180, 50),
    "cyan": (40, 215, 225),
    "blue": (30, 60, 220),
    "purple": (140, 40, 190),
    "pink": (250, 130, 200),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
COLOUR_JITTER = 12


# -- labels -----------------------------------------------------------------------------------
def colour_label(colour: str) -> str:
    return f"{colour} thing"


def background_label(background: str) -> str:
    return f"{background} background"


def compound_label(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


def label_families() -> dict[str, list[str]]:
    """Label texts by family, in a fixed order."""
    return {
        "colour": [colour_label(c) for c in COLOURS],
        "shape": list(SHAPES),
        "background": [background_label(b) for b in BACKGROUNDS],
        "compound": [compound_label(c, s) for c in COLOURS for s in SHAPES],
    }


def all_labels() -> list[str]:
    """Every label of the world: the families of :func:`label_families` concatenated."""
    return [label for family in label_families().values() for label in family]


# -- scenes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    cell: tuple[int, int]  # (row, column) in the GRID x GRID cell grid
    offset: tuple[int, int]  # (dy, dx) of the shape's box inside its cell, in pixels
    rgb: tuple[int, int, int]  # the colour with its jitter


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: str
    bg_rgb: tuple[int, int, int]  # base tone (muted, never a labelled colour)
    bg_rgb2: tuple[int, int, int]  # second tone of the texture
    bg_variant: int = 0  # stripe direction / gradient direction / pattern phase

    def labels(self) -> list[str]:
        """The positive labels of this scene, in :func:`all_labels` order."""
        present = {colour_label(o.colour) for o in self.objects}
        present |= {o.shape for o in self.objects}
        present.add(background_label(self.background))
        present |= {compound_label(o.colour, o.shape) for o in self.objects}
        return [label for label in all_labels() if label in present]


def sample_scene(rng: np.random.Generator) -> Scene:
    """A random scene: 1-3 objects in distinct cells, distinct colour-shape pairs."""
    count = int(rng.choice(len(OBJECT_COUNT_P), p=OBJECT_COUNT_P)) + 1
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        pair = (COLOURS[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))])
        if pair not in pairs:
            pairs.append(pair)
    return _build_scene(rng, pairs, BACKGROUNDS[rng.integers(len(BACKGROUNDS))])


def _build_scene(rng: np.random.Generator, pairs: Sequence[tuple[str, str]], background: str,
                 like: Scene | None = None) -> Scene:
    """A scene with these (colour, shape) pairs; ``like`` fixes sizes, cells, offsets and tones."""
    if like is not None:
        objects = tuple(SceneObject(shape, colour, o.size, o.cell, o.offset, _jitter(rng, colour))
                        for (colour, shape), o in zip(pairs, like.objects))
        return Scene(objects, background, like.bg_rgb, like.bg_rgb2, like.bg_variant)
    cells = rng.choice(GRID * GRID, size=len(pairs), replace=False)
    objects = []
    for (colour, shape), cell in zip(pairs, cells):
        size = SIZES[rng.integers(len(SIZES))]
        slack = CELL - SIZE_PX[size]
        lo, hi = max(0, slack // 2 - 1), min(slack, slack // 2 + 1)  # +-1 px around the cell centre
        offset = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
        objects.append(SceneObject(shape, colour, size, (int(cell) // GRID, int(cell) % GRID), offset,
                                   _jitter(rng, colour)))
    bg_rgb, bg_rgb2 = _background_tones(rng)
    return Scene(tuple(objects), background, bg_rgb, bg_rgb2, int(rng.integers(4)))


def _jitter(rng: np.random.Generator, colour: str) -> tuple[int, int, int]:
    rgb = np.clip(np.array(COLOUR_RGB[colour]) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3), 0, 255)
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def _background_tones(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A muted base tone (low saturation, mid value) and a clearly lighter or darker second tone."""
    hue = rng.random()
    sat = rng.uniform(0.1, 0.3)
    val = rng.uniform(0.4, 0.6)
    delta = rng.uniform(0.2, 0.3) * (1 if rng.random() < 0.5 else -1)
    return _hsv(hue, sat, val), _hsv(hue, sat, val + delta)


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, float(np.clip(v, 0.0, 1.0)))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


# -- minimal-pair groups (for contrastive pretraining) ----------------------------------------
GROUP_KINDS = ("shape", "background", "colour", "random")


def sample_group(rng: np.random.Generator, size: int = 4, kind: str | None = None) -> list[Scene]:
    """``size`` scenes that differ in one factor only, so the captions can only be told apart by it.

    Apart from that factor the scenes are pixel-for-pixel alike (same cells, offsets, sizes and
    background tones): true minimal pairs.

    ``shape``: same colours, sizes, count and background, different shapes; ``background``: same
    objects, different backgrounds; ``colour``: same shapes, different colours; ``random``:
    independent scenes.
    """
    kind = kind or GROUP_KINDS[rng.integers(len(GROUP_KINDS))]
    if kind == "random":
        return [sample_scene(rng) for _ in range(size)]
    base = sample_scene(rng)
    pairs = [(o.colour, o.shape) for o in base.objects]
    scenes = [base]
    if kind == "background":
        others = [b for b in BACKGROUNDS if b != base.background]
        for b in rng.permutation(others)[:size - 1]:
            scenes.append(_build_scene(rng, pairs, str(b), base))
        while len(scenes) < size:
            scenes.append(_build_scene(rng, pairs, BACKGROUNDS[rng.integers(len(BACKGROUNDS))], base))
        return scenes
    axis = 1 if kind == "shape" else 0
    values = SHAPES if kind == "shape" else COLOURS
    for _ in range(size - 1):
        new_pairs: list[tuple[str, str]] = []
        for pair in pairs:
            while True:
                v = values[rng.integers(len(values))]
                cand = (pair[0], v) if axis == 1 else (v, pair[1])
                if v != pair[axis] and cand not in new_pairs:
                    break
            new_pairs.append(cand)
        scenes.append(_build_scene(rng, new_pairs, base.background, base))
    return scenes
