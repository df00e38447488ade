"""Captions of synthetic scenes and the facts they state.

A caption's facts say which scenes it is true of: ``("obj", colour|None, shape|None, size|None)``
needs an object matching the non-None parts, ``("bg", kind)`` needs that background. Pretraining
uses them to treat every caption that is true of an image as a positive for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mkt.synthetic.scenes import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    background_label,
    colour_label,
    compound_label,
)

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


def scene_captions(scene: Scene, rng: np.random.Generator) -> list[str]:
    """A few captions of the scene; the first one describes it fully (the texts of :func:`caption_facts`)."""
    return [text for text, _ in caption_facts(scene, rng)]


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
    """The fact each label of :func:`~mkt.synthetic.scenes.all_labels` states (its label prompt is true
    of a scene iff it holds)."""
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
