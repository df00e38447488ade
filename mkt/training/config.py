"""What an MKT training run is told: :class:`TrainConfig`, the one table of per-stage defaults
(:data:`STAGE_DEFAULTS`) and the command line that fills it.

Every way of starting a run (``python -m mkt.training.train``, the ``tagscope train`` commands, the
synthetic-world experiments) builds its config with :meth:`TrainConfig.for_stage`, so the
defaults of a stage come from one place.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from core.errors import TagscopeError
from mkt.tagmodel import MKT_TEMPLATE

PAPER_AUGMENT = "rand-m9-mstd0.5-inc1"

# The official recipe where the two stages differ: stage 1 trains 20 epochs, 2 of them warm-up,
# then cosine; stage 2 (prompt tuning) 4 epochs of cosine without warm-up. Everything else
# (AdamW lr 1e-3 to 1e-6, batch 64, ...) is shared: the field defaults of TrainConfig.
STAGE_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {"epochs": 20, "warmup_epochs": 2.0},
    2: {"epochs": 4, "warmup_epochs": 0.0},
}


@dataclass
class TrainConfig:
    stage: int
    init: str
    out: str
    train: str = ""                      # annotations (JSONL/CSV), or "synthetic"
    images: str = ""                     # images folder the annotations are relative to
    seen: str = ""                       # seen label list (file); synthetic: from --unseen-count
    unseen: str = ""                     # unseen label list (file), stored in the bundle's vocabulary
    synthetic_n: int = 2000              # images generated for --train synthetic
    synthetic_unseen: int = 20
    synthetic_seed: int = 0              # which training images are generated
    synthetic_split_seed: int = 0        # which compounds are held out: fixed, whatever the run's seed
    epochs: int | None = None            # None: the stage's, from STAGE_DEFAULTS (set on construction)
    max_steps: int = 0                   # > 0: stop after this many steps (overrides epochs)
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup_epochs: float | None = None   # None: the stage's, from STAGE_DEFAULTS (set on construction)
    weight_decay: float = 0.05
    layer_decay: float = 0.65            # stage 1
    train_blocks: int = 2                # stage 1
    distill_weight: float = 1.0          # stage 1
    top_k: int = 0                       # 0: scaled to the patch count (16 of 196)
    global_only: bool = False
    label_norm: bool = True              # the paper's label-axis normalisation in the loss
    template: str = MKT_TEMPLATE
    augment: str = PAPER_AUGMENT         # timm auto-augment string, or "none"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = 0.5
    prompt_mode: str = "coop"            # stage 2: "coop" (context vectors) or "table" (official code)
    prompt_init: str = "template"        # stage 2: "template" or "random"
    n_ctx: int = 4                       # stage 2: context vectors with prompt_init="random"
    seed: int = 0
    device: str = ""
    amp: bool = True
    workers: int = 2
    log_every: int = 20
    resume: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGE_DEFAULTS:
            raise TagscopeError("stage must be 1 or 2")
        for name, value in STAGE_DEFAULTS[self.stage].items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    @classmethod
    def for_stage(cls, stage: int, **overrides: Any) -> TrainConfig:
        """The config of one stage: the official recipe's defaults for that stage, then
        ``overrides`` (an override of None keeps the default)."""
        return cls(stage=stage, **{name: value for name, value in overrides.items() if value is not None})


# -- command line ------------------------------------------------------------------------------

def _per_stage_help(name: str) -> str:
    return "default: " + ", ".join(f"{values[name]:g} for stage {stage}" for stage, values in STAGE_DEFAULTS.items())


def build_parser(prog: str = "python -m mkt.training.train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train MKT (stage 1: image side; stage 2: prompt).")
    p.add_argument("stage", choices=["stage1", "stage2"])
    p.add_argument("--init", required=True, help="model to start from: open_clip:ARCH:PRETRAINED, synthetic, "
                                                 "or (stage 2) mkt:STAGE1.pt")
    p.add_argument("--out", required=True, help="bundle to write")
    p.add_argument("--train", default="", help="annotations JSONL/CSV, or 'synthetic'")
    p.add_argument("--images", default="", help="folder the annotation paths are relative to")
    p.add_argument("--seen", default="", help="seen labels, one per line")
    p.add_argument("--unseen", default="", help="unseen labels (kept in the bundle's vocabulary)")
    d = TrainConfig.for_stage(1, init="", out="")  # the defaults the stages share
    p.add_argument("--epochs", type=int, default=None, help=_per_stage_help("epochs") + " (official)")
    p.add_argument("--warmup-epochs", type=float, default=None, help=_per_stage_help("warmup_epochs"))
    for name in ("synthetic_n", "synthetic_unseen", "synthetic_seed", "synthetic_split_seed", "max_steps", "batch_size",
                 "train_blocks", "top_k", "n_ctx", "seed", "workers", "log_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr", "min_lr", "weight_decay", "layer_decay", "distill_weight", "hflip"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    p.add_argument("--crop-scale", type=float, nargs=2, default=d.crop_scale)
    p.add_argument("--template", default=d.template)
    p.add_argument("--augment", default=d.augment, help=f"timm auto-augment (paper: {PAPER_AUGMENT}) or none")
    p.add_argument("--prompt-mode", choices=["coop", "table"], default=d.prompt_mode)
    p.add_argument("--prompt-init", choices=["template", "random"], default=d.prompt_init)
    p.add_argument("--global-only", action="store_true", help="ablation: global stream only")
    p.add_argument("--no-label-norm", dest="label_norm", action="store_false")
    p.add_argument("--no-amp", dest="amp", action="store_false")
    p.add_argument("--device", default="")
    p.add_argument("--resume", default="", help="checkpoint (.ckpt next to a previous --out) to continue")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = vars(args).copy()
    stage = 1 if values.pop("stage") == "stage1" else 2
    values["crop_scale"] = tuple(values["crop_scale"])
    return TrainConfig.for_stage(stage, **values)
