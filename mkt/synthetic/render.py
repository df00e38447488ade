"""Rendering synthetic scenes to pixels: anti-aliased shape masks on textured backgrounds."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from mkt.synthetic.scenes import BACKGROUNDS, CELL, IMAGE_SIZE, SHAPES, SIZE_PX, Scene

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
