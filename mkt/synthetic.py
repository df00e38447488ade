"""The synthetic world: procedurally generated, deterministic images, captions and tags.

A 64x64 RGB image is a textured background with 1-3 coloured shapes. The image is divided
into a 4x4 grid of 16x16 cells, aligned with the 16-pixel patches of the ``tagscope-tiny``
ViT, and every object lies entirely inside one cell: one object = one patch token. That makes
shape a per-token problem that a tiny ViT learns in minutes (with free placement or objects
spanning several patches, shape stayed at chance in the feasibility probe), and it gives the
MKT local stream one patch per object. See docs/synthetic-world.md for the design and numbers.

Label families (the label texts are what the zero-shot prompt "a photo of a {label}." sees;
the same phrases occur in the training captions):

- colour: "red thing", ... (10)      - shape: "circle", ... (10)
- background: "striped background", ... (6)
- compound: "red circle", ... (100 colour-shape pairs)

Everything is driven by an explicit ``numpy.random.Generator``: same seed, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

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

    def captions(self, rng: np.random.Generator) -> list[str]:
        """A few captions of the scene; the first one describes it fully."""
        return [text for text, _ in caption_facts(self, rng)]


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
    import colorsys

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


# -- captions ---------------------------------------------------------------------------------
# A caption's facts say which scenes it is true of: ("obj", colour|None, shape|None, size|None)
# needs an object matching the non-None parts, ("bg", kind) needs that background. Pretraining
# uses them to treat every caption that is true of an image as a positive for it.
Fact = tuple[Any, ...]


def _phrase(obj: SceneObject, with_size: bool) -> str:
    return f"a {obj.size} {obj.colour} {obj.shape}" if with_size else f"a {obj.colour} {obj.shape}"


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption_facts(scene: Scene, rng: np.random.Generator) -> list[tuple[str, frozenset[Fact]]]:
    """Captions of ``scene`` with the facts each one states; the first is the full description."""
    objs = list(scene.objects)
    order = rng.permutation(len(objs))
    objs = [objs[i] for i in order]
    with_size = bool(rng.random() < 0.5)
    obj_facts = frozenset(("obj", o.colour, o.shape, o.size if with_size else None) for o in objs)
    bg = background_label(scene.background)
    bg_fact = frozenset({("bg", scene.background)})
    phrase = _join([_phrase(o, with_size) for o in objs])
    full_templates = (
        f"a photo of {phrase} on a {bg}.",
        f"{phrase} on a {bg}.",
        f"a {bg} with {phrase}.",
    )
    one = objs[0]
    out: list[tuple[str, frozenset[Fact]]] = [
        (full_templates[rng.integers(len(full_templates))], obj_facts | bg_fact),
        (f"a photo of {phrase}.", obj_facts),
        (f"a photo of a {compound_label(one.colour, one.shape)}.", frozenset({("obj", one.colour, one.shape, None)})),
        (f"a photo of a {one.shape}.", frozenset({("obj", None, one.shape, None)})),
        (f"a photo of a {colour_label(one.colour)}.", frozenset({("obj", one.colour, None, None)})),
        (f"a photo of a {bg}.", bg_fact),
    ]
    return out


def main_object(scene: Scene) -> SceneObject:
    """The object a one-line web caption would name: the largest, the first in reading order on a tie."""
    return min(scene.objects, key=lambda o: (o.size != "large", o.cell))


def main_caption_facts(scene: Scene, rng: np.random.Generator) -> list[tuple[str, frozenset[Fact]]]:
    """Web-style captions of ``scene``: they name only its main object (and maybe the background).

    Like alt text, such a caption says what the picture is "of" and leaves the other objects out;
    a CLIP pretrained on them represents secondary objects weakly (see :func:`main_facts`).
    Order: compound, compound on background, shape, colour, background.
    """
    one = main_object(scene)
    bg = background_label(scene.background)
    obj = frozenset({("obj", one.colour, one.shape, None)})
    bg_fact = frozenset({("bg", scene.background)})
    compound = compound_label(one.colour, one.shape)
    return [
        (f"a photo of a {compound}.", obj),
        (f"a photo of a {compound} on a {bg}.", obj | bg_fact),
        (f"a photo of a {one.shape}.", frozenset({("obj", None, one.shape, None)})),
        (f"a photo of a {colour_label(one.colour)}.", frozenset({("obj", one.colour, None, None)})),
        (f"a photo of a {bg}.", bg_fact),
    ]


def main_facts(scene: Scene) -> set[Fact]:
    """The facts a web-style caption of ``scene`` can state: its main object and its background."""
    one = main_object(scene)
    facts: set[Fact] = {("bg", scene.background)}
    for colour in (one.colour, None):
        for shape in (one.shape, None):
            if colour is not None or shape is not None:
                facts.add(("obj", colour, shape, None))
    return facts


def label_facts() -> list[frozenset[Fact]]:
    """The fact each label of :func:`all_labels` states (its label prompt is true of a scene iff it holds)."""
    facts = [frozenset({("obj", c, None, None)}) for c in COLOURS]
    facts += [frozenset({("obj", None, s, None)}) for s in SHAPES]
    facts += [frozenset({("bg", b)}) for b in BACKGROUNDS]
    facts += [frozenset({("obj", c, s, None)}) for c in COLOURS for s in SHAPES]
    return facts


def scene_facts(scene: Scene) -> set[Fact]:
    """Every fact that is true of ``scene`` (the facts any of its true captions can state)."""
    facts: set[Fact] = {("bg", scene.background)}
    for o in scene.objects:
        for colour in (o.colour, None):
            for shape in (o.shape, None):
                for size in (o.size, None):
                    if colour is not None or shape is not None:
                        facts.add(("obj", colour, shape, size))
    return facts


def caption_vocabulary() -> list[str]:
    """Texts that together contain every word any caption or label prompt of the world can use."""
    words = " ".join(list(SHAPES) + list(COLOURS) + list(BACKGROUNDS) + list(SIZES))
    return [words, "a photo of a thing on a background with and , ."]


# -- rendering --------------------------------------------------------------------------------
_SUPERSAMPLE = 4


@cache
def shape_mask(shape: str, size_px: int) -> np.ndarray:
    """Anti-aliased coverage mask ``[size_px, size_px]`` in [0, 1] (drawn at 4x, box-filtered)."""
    n = size_px * _SUPERSAMPLE
    img = Image.new("L", (n, n), 0)
    d = ImageDraw.Draw(img)
    m = n - 1

    def poly(points: Sequence[tuple[float, float]], fill: int = 255) -> None:
        d.polygon([(x * m, y * m) for x, y in points], fill=fill)

    if shape == "circle":
        d.ellipse((0, 0, m, m), fill=255)
    elif shape == "square":
        d.rectangle((0.08 * m, 0.08 * m, 0.92 * m, 0.92 * m), fill=255)
    elif shape == "triangle":
        poly([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)])
    elif shape == "star":
        pts = []
        for k in range(10):
            r = 0.5 if k % 2 == 0 else 0.2
            a = -np.pi / 2 + k * np.pi / 5
            pts.append((0.5 + r * np.cos(a), 0.53 + r * np.sin(a)))
        poly(pts)
    elif shape == "cross":
        poly([(0.33, 0), (0.67, 0), (0.67, 0.33), (1, 0.33), (1, 0.67), (0.67, 0.67), (0.67, 1), (0.33, 1),
              (0.33, 0.67), (0, 0.67), (0, 0.33), (0.33, 0.33)])
    elif shape == "ring":
        d.ellipse((0, 0, m, m), fill=255)
        d.ellipse((0.3 * m, 0.3 * m, 0.7 * m, 0.7 * m), fill=0)
    elif shape == "diamond":
        poly([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)])
    elif shape == "heart":
        d.ellipse((0, 0.05 * m, 0.54 * m, 0.55 * m), fill=255)
        d.ellipse((0.46 * m, 0.05 * m, m, 0.55 * m), fill=255)
        poly([(0.03, 0.42), (0.97, 0.42), (0.5, 1.0)])
    elif shape == "crescent":
        d.ellipse((0, 0, m, m), fill=255)
        d.ellipse((0.35 * m, -0.1 * m, 1.25 * m, 0.8 * m), fill=0)
    elif shape == "arrow":
        poly([(0.5, 0.0), (1.0, 0.5), (0.68, 0.5), (0.68, 1.0), (0.32, 1.0), (0.32, 0.5), (0.0, 0.5)])
    else:
        raise ValueError(f"unknown shape {shape!r}; the world's shapes are {SHAPES}")
    small = img.resize((size_px, size_px), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)


def _background(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    a = np.array(scene.bg_rgb, dtype=np.float32)
    b = np.array(scene.bg_rgb2, dtype=np.float32)
    v = scene.bg_variant
    kind = scene.background
    if kind == "plain":
        t = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    elif kind == "striped":  # 3-px bands, period 6; horizontal, vertical or one of two diagonals
        coord = (_YY, _XX, _XX + _YY, _XX - _YY + IMAGE_SIZE)[v]
        t = ((coord // 3) % 2).astype(np.float32)
    elif kind == "dotted":  # dots of radius ~1.5 px on a 6-px lattice
        ph = v % 2 * 3
        dy = (_YY + ph) % 6 - 2.5
        dx = (_XX + ph) % 6 - 2.5
        t = np.clip(2.0 - np.sqrt(dy * dy + dx * dx), 0, 1)
    elif kind == "checkered":  # 4-px squares
        ph = v % 2 * 2
        t = (((_YY + ph) // 4 + (_XX + ph) // 4) % 2).astype(np.float32)
    elif kind == "gradient":  # linear ramp across the whole image in one of 4 directions
        coord = (_YY, _XX, IMAGE_SIZE - 1 - _YY, IMAGE_SIZE - 1 - _XX)[v]
        t = coord / (IMAGE_SIZE - 1)
    elif kind == "noisy":  # per-pixel noise
        t = rng.random((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}; the world's backgrounds are {BACKGROUNDS}")
    return a + t[..., None] * (b - a)


def render_array(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene as a ``uint8`` array ``[IMAGE_SIZE, IMAGE_SIZE, 3]``."""
    img = _background(scene, rng)
    for o in scene.objects:
        px = SIZE_PX[o.size]
        y0 = o.cell[0] * CELL + o.offset[0]
        x0 = o.cell[1] * CELL + o.offset[1]
        alpha = shape_mask(o.shape, px)[..., None]
        region = img[y0:y0 + px, x0:x0 + px]
        img[y0:y0 + px, x0:x0 + px] = region + alpha * (np.array(o.rgb, np.float32) - region)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """The scene as an RGB PIL image of ``IMAGE_SIZE`` x ``IMAGE_SIZE`` pixels."""
    return Image.fromarray(render_array(scene, rng), mode="RGB")


# -- data sets ---------------------------------------------------------------------------------
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
        caption = scene.captions(rng)[0]
        lines.append(json.dumps({"file": name, "labels": scene.labels(), "caption": caption}))
    (out / "labels.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def label_matrix(scenes: Sequence[Scene], labels: Sequence[str]) -> np.ndarray:
    """``[N, L]`` int8 annotations in {1, -1} (the metrics' convention)."""
    index = {label: j for j, label in enumerate(labels)}
    y = -np.ones((len(scenes), len(labels)), dtype=np.int8)
    for i, scene in enumerate(scenes):
        for label in scene.labels():
            if label in index:
                y[i, index[label]] = 1
    return y


# -- evaluation --------------------------------------------------------------------------------
EVAL_SEED = 20_240_601  # never used for training data


def evaluate_zero_shot(model: Any, n: int = 500, seed: int = EVAL_SEED, batch_size: int = 128,
                       template: str | None = None) -> dict[str, Any]:
    """Zero-shot tagging quality of ``model`` (a :class:`mkt.tagmodel.TagModel`) per label family.

    Renders ``n`` fresh scenes from ``seed``, runs them through the model's own ``preprocess``
    and ``encode_images``, scores every label of :func:`all_labels` with ``encode_labels`` (the
    model's prompt; ``template`` overrides it for this call) and ``score``. Per family: ``map``
    (mean average precision, :func:`mkt.metrics.mean_average_precision`), ``chance`` (the mean
    positive rate of the family's labels, the mAP of a random ranking), ``precision_at_10``
    (mean over labels of the fraction of positives among the 10 best-scored images) and
    ``chance_at_10`` (the same positive rate).
    """
    import torch

    from mkt.metrics import mean_average_precision

    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    labels = all_labels()
    y = label_matrix(scenes, labels)
    old_template = getattr(model, "template", None)
    if template is not None:
        model.template = template
    try:
        with torch.no_grad():
            label_emb = model.encode_labels(labels)
            scores = []
            for start in range(0, n, batch_size):
                chunk = scenes[start:start + batch_size]
                pixels = torch.stack([model.preprocess(render(s, rng)) for s in chunk]).to(model.device)
                scores.append(model.score(model.encode_images(pixels), label_emb).float().cpu())
            s = torch.cat(scores).numpy()
    finally:
        if template is not None:
            model.template = old_template
    families: dict[str, dict[str, float]] = {}
    start = 0
    for family, names in label_families().items():
        cols = slice(start, start + len(names))
        start += len(names)
        fs, fy = s[:, cols], y[:, cols]
        top = np.argsort(-fs, axis=0, kind="stable")[:10]
        p10 = float(np.mean(np.take_along_axis(fy, top, axis=0) == 1))
        chance = float(np.mean(fy == 1))
        families[family] = {
            "map": round(mean_average_precision(fs, fy), 4),
            "chance": round(chance, 4),
            "precision_at_10": round(p10, 4),
            "chance_at_10": round(chance, 4),
        }
    return {"n": n, "seed": seed, "template": template or old_template, "families": families}
