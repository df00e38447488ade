"""Near-duplicate families of synthetic-world photos, and the photos that must not join them.

Each family is a base photo (a scene rendered at ``SIDE`` px, JPEG quality 92) and what a photo
library collects of it: a copy resized to half (``resized``), one re-encoded at JPEG quality 25
(``jpeg``), an 88% crop off the centre (``crop``) and a burst shot a moment later (``burst``: the
scene rendered again, its noise drawn anew, the camera moved by 2-4% and the light by up to 8%).
Negatives: photos of other random scenes (``distinct``) and the hard ones, scenes with exactly the
family's labels but another layout, other sizes and tones (``same-labels``); with ``minimal`` also
the family's scene with one object's shape or colour changed and all else pixel-alike
(``one-object``: a question of taste, reported apart by ``bench.duplicates``).

:func:`write_variants` writes them with a manifest (``variants.json``: file -> family, kind);
tests and ``python -m bench.duplicates`` tag such folders with the real pipeline.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from bench.library import Shot, write_still
from mkt.synthetic.render import render
from mkt.synthetic.scenes import COLOURS, SHAPES, Scene, _build_scene, sample_scene

SIDE = 384
VARIANT_KINDS = ("resized", "jpeg", "crop", "burst")
NEGATIVE_KINDS = ("distinct", "same-labels", "one-object")
MANIFEST = "variants.json"


def photo(scene: Scene, rng: np.random.Generator, side: int = SIDE) -> Image.Image:
    """The scene as a photo of ``side`` px (scaled up smoothly, as a camera's pixels look)."""
    return render(scene, rng).resize((side, side), Image.Resampling.BICUBIC)


def resized(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def cropped(image: Image.Image, rng: np.random.Generator, share: float = 0.88) -> Image.Image:
    """An off-centre crop keeping ``share`` of each side."""
    w, h = round(image.width * share), round(image.height * share)
    x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
    return image.crop((x, y, x + w, y + h))


def burst(scene: Scene, rng: np.random.Generator, side: int = SIDE) -> Image.Image:
    """The scene a moment later: rendered again (new sensor noise on noisy backgrounds), the
    camera moved by 2-4% of the frame and the exposure changed by up to 8%."""
    big = photo(scene, rng, side)
    shift = rng.uniform(0.02, 0.04, size=2) * side * rng.choice([-1, 1], size=2)
    margin = int(np.ceil(np.abs(shift).max()))
    x, y = margin + shift[0], margin + shift[1]
    box = (x, y, x + side - 2 * margin, y + side - 2 * margin)
    moved = big.resize((side, side), Image.Resampling.BICUBIC, box=box)
    return ImageEnhance.Brightness(moved).enhance(float(rng.uniform(0.92, 1.08)))


def same_labels(scene: Scene, rng: np.random.Generator) -> Scene:
    """Another scene with exactly ``scene``'s labels: the same colour-shape pairs and background,
    other cells, sizes and tones."""
    return _build_scene(rng, [(o.colour, o.shape) for o in scene.objects], scene.background)


def one_object_changed(scene: Scene, rng: np.random.Generator) -> Scene:
    """``scene`` with one object's shape or colour changed, all else pixel-alike."""
    pairs = [(o.colour, o.shape) for o in scene.objects]
    k = int(rng.integers(len(pairs)))
    while True:
        colour, shape = pairs[k]
        if rng.random() < 0.5:
            shape = SHAPES[rng.integers(len(SHAPES))]
        else:
            colour = COLOURS[rng.integers(len(COLOURS))]
        if (colour, shape) not in pairs:
            break
    pairs[k] = (colour, shape)
    return _build_scene(rng, pairs, scene.background, like=scene)


def variant(kind: str, base: Image.Image, scene: Scene, rng: np.random.Generator) -> Image.Image:
    """One near-duplicate of ``base`` (the photo of ``scene``); ``jpeg`` is ``base`` itself, written at
    quality 25 by :func:`write_variants`."""
    if kind == "resized":
        return resized(base)
    if kind == "crop":
        return cropped(base, rng)
    if kind == "burst":
        return burst(scene, rng)
    if kind == "jpeg":
        return base
    raise ValueError(f"unknown variant {kind!r}: use {', '.join(VARIANT_KINDS)}")


def write_variants(root: str | Path, families: int, distinct: int, seed: int = 0, minimal: bool = False,
                   kinds: tuple[str, ...] = VARIANT_KINDS) -> dict[str, dict]:
    """Write ``families`` near-duplicate families (a base and one photo of each of ``kinds``), one
    ``same-labels`` photo per family (and a ``one-object`` one with ``minimal``) and ``distinct``
    other photos into ``root`` under shuffled names; returns the manifest, also written to
    ``root/variants.json``: file name -> {"family": int or None, "kind": str}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = datetime(2024, 5, 1, 9, 0, 0)
    items: list[tuple[Image.Image, int | None, str, Shot]] = []
    for f in range(families):
        scene = sample_scene(rng)
        when = start + timedelta(hours=f)
        shot = Shot(taken=when, make="Synthetic", model="Cam 1")
        base = photo(scene, rng)
        items.append((base, f, "base", shot))
        for kind in kinds:
            later = Shot(taken=when + timedelta(seconds=1), make="Synthetic", model="Cam 1")
            items.append((variant(kind, base, scene, rng), f, kind, later if kind == "burst" else shot))
        items.append((photo(same_labels(scene, rng), rng), None, "same-labels",
                      Shot(taken=when + timedelta(minutes=5))))
        if minimal:
            items.append((photo(one_object_changed(scene, rng), rng), None, "one-object",
                          Shot(taken=when + timedelta(minutes=6))))
    for d in range(distinct):
        items.append((photo(sample_scene(rng), rng), None, "distinct", Shot(taken=start - timedelta(days=d + 1))))
    order = rng.permutation(len(items))
    manifest: dict[str, dict] = {}
    for name_no, k in enumerate(order):
        image, family, kind, shot = items[int(k)]
        name = f"IMG_{name_no:05d}.jpg"
        write_still(root / name, image, shot, quality=25 if kind == "jpeg" else 92)
        manifest[name] = {"family": family, "kind": kind}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
