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

Modules: :mod:`~mkt.synthetic.scenes` (vocabulary, labels, scenes, minimal-pair groups),
:mod:`~mkt.synthetic.captions` (captions and the facts they state), :mod:`~mkt.synthetic.render`
(pixels), :mod:`~mkt.synthetic.datasets` (image folders, label matrices, the seen/unseen split).
Zero-shot evaluation on the world is :func:`mkt.training.evaluate.zero_shot_by_family`.
"""

from mkt.synthetic.captions import (
    Fact,
    caption_facts,
    caption_vocabulary,
    label_facts,
    main_caption_facts,
    main_facts,
    main_object,
    scene_captions,
    scene_facts,
)
from mkt.synthetic.datasets import ABSENT_TEXTS, DEMO_SEED, EVAL_SEED, generate, label_matrix, synthetic_split
from mkt.synthetic.render import render, render_array, shape_mask
from mkt.synthetic.scenes import (
    BACKGROUNDS,
    CELL,
    COLOUR_JITTER,
    COLOUR_RGB,
    COLOURS,
    GRID,
    GROUP_KINDS,
    IMAGE_SIZE,
    OBJECT_COUNT_P,
    SHAPES,
    SIZE_PX,
    SIZES,
    Scene,
    SceneObject,
    all_labels,
    background_label,
    colour_label,
    compound_label,
    label_families,
    sample_group,
    sample_scene,
)

__all__ = [
    "ABSENT_TEXTS", "BACKGROUNDS", "CELL", "COLOURS", "COLOUR_JITTER", "COLOUR_RGB", "DEMO_SEED", "EVAL_SEED", "GRID",
    "GROUP_KINDS",
    "IMAGE_SIZE", "OBJECT_COUNT_P", "SHAPES", "SIZES", "SIZE_PX", "Fact", "Scene", "SceneObject", "all_labels",
    "background_label", "caption_facts", "caption_vocabulary", "colour_label", "compound_label", "generate",
    "label_facts", "label_families", "label_matrix", "main_caption_facts", "main_facts", "main_object", "render",
    "render_array", "sample_group", "sample_scene", "scene_captions", "scene_facts", "shape_mask",
    "synthetic_split",
]
