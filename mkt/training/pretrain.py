"""Contrastive pretraining of the tiny open_clip model on the synthetic world (CPU, ~10 minutes).

    python -m mkt.training.pretrain --out mkt/assets/synthetic.pt --seed 0 --steps 1200 --batch-size 128 --lr 0.001

The model is open_clip's own CLIP for the ``tagscope-tiny`` architecture, built through
``open_clip.create_model_and_transforms``. Batches are generated on the fly from
:mod:`mkt.synthetic` as minimal-pair groups (scenes that differ only in shapes, only in
background or only in colours, plus independent ones), each image with one caption drawn from
its captions; every batch also holds the prompt of every label ("a photo of a red circle.").

Loss ("hybrid"): a symmetric multi-positive InfoNCE over the batch's captions, in which every
caption that is *true* of an image counts as a positive (a partial caption such as "a photo of a
red thing." is true of every image with a red object; each positive's log-probability is
averaged, SupCon style), plus a SigLIP-style pairwise sigmoid loss between the images and the
label prompts. Shape needs a symmetry breaker: for the first 60% of the steps the image embedding
also feeds a fixed random linear read-out trained with BCE on label presence (alone for the first
30%). Without it, shape stayed at chance + 0.07 whatever else was tried (docs/synthetic-world.md).

With ``--captions web`` the captions name the main object only, and the loss is the plain
multi-positive InfoNCE without label prompts (the baseline CLIP of the MKT experiments).

The schedule is step based (linear warm-up, cosine decay), seeded, and independent of machine
load. The result is written as a :class:`mkt.bundle.Bundle` with its zero-shot quality per
label family, measured on the shipped (sparsified, float16) weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from core.errors import report_user_errors
from mkt import synthetic as world
from mkt.bundle import Bundle, save_bundle
from mkt.factory import MODEL_CONFIG_DIR, model_from_bundle, register_arch
from mkt.training.evaluate import zero_shot_by_family
from mkt.training.model import cosine_lr
from mkt.training.pretrain_data import (
    CAPTION_P,
    CAPTION_STYLES,
    GROUP_P,
    GROUP_SIZE,
    N_SIMPLE,
    WEB_CAPTION_P,
    BatchMaker,
)

log = logging.getLogger(__name__)

ARCH = "tagscope-tiny"
TEMPLATES = ("a photo of a {label}.", "{label}.", "a {label}.")
WEIGHT_DECAY = 0.1  # AdamW, on matrices only
AUX_FRACTION = 0.6  # share of the steps with the shape read-out (alone for the first half of them)
# The label-prompt sigmoid loss: fixed scale exp(log 10) = 10 and bias -4, training-only.
PROMPT_LOG_SCALE = math.log(10.0)
PROMPT_BIAS = -4.0
THREADS = 2


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run. ``captions="full"`` is the shipped model (all captions, label prompts);
    ``"web"`` captions name the main object only, with no label prompts (docs/mkt.md)."""

    out: str | Path
    seed: int = 0
    steps: int = 1200
    batch_size: int = 128
    lr: float = 1e-3
    captions: str = "full"
    log_every: int = 50
    eval_n: int = 500  # zero-shot evaluation scenes recorded in the bundle's meta
    choose_template: bool = True  # pick the prompt template on a validation seed

    def __post_init__(self) -> None:
        if self.captions not in CAPTION_STYLES:
            raise ValueError(f"captions must be one of {CAPTION_STYLES}, not {self.captions!r}")

    @property
    def label_prompts(self) -> bool:
        return self.captions == "full"

    @property
    def caption_p(self) -> tuple[float, ...]:
        return CAPTION_P if self.captions == "full" else WEB_CAPTION_P

    @property
    def warmup(self) -> int:
        return max(1, self.steps // 20)

    def command_line(self) -> str:
        return (f"python -m mkt.training.pretrain --out {self.out} --seed {self.seed} --steps {self.steps} "
                f"--batch-size {self.batch_size} --lr {self.lr:g}"
                + (f" --captions {self.captions}" if self.captions != "full" else ""))


def default_model_config() -> dict[str, Any]:
    return json.loads((MODEL_CONFIG_DIR / f"{ARCH}.json").read_text())


# -- losses ------------------------------------------------------------------------------------
def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                             pos: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where ``pos[i, j]`` marks every true image-caption pair as a positive."""
    logits = logit_scale * img.float() @ txt.float().T
    posf = pos.float()
    i2t = -(F.log_softmax(logits, dim=1) * posf).sum(1) / posf.sum(1)
    n_img = posf.sum(0)
    t2i = -(F.log_softmax(logits, dim=0) * posf).sum(0) / n_img.clamp(min=1)
    has = n_img > 0  # a label prompt may be true of no image in the batch: no text-to-image term
    return (i2t.mean() + t2i[has].mean()) / 2


def multi_positive_sigmoid_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                                logit_bias: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """SigLIP-style pairwise loss: every image-caption pair is a binary "is this caption true?" task."""
    logits = logit_scale * img.float() @ txt.float().T + logit_bias
    sign = pos.float() * 2 - 1
    return -F.logsigmoid(sign * logits).sum() / img.shape[0]


def _bf16_supported() -> bool:
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")
                    or torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older torch without the probe
        return False


# -- training ----------------------------------------------------------------------------------
@dataclass
class Run:
    """A model being pretrained and what its steps need."""

    config: PretrainConfig
    model_config: dict[str, Any]
    model: Any  # open_clip.CLIP
    tokenizer: Any
    batches: BatchMaker
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer]  # AdamW (dense), SparseAdam (token table)
    aux_head: torch.nn.Linear
    use_bf16: bool


def setup(config: PretrainConfig) -> Run:
    """Seeded model, batches and optimizers.

    The token table (49408 rows, a few dozen used) gets sparse gradients and SparseAdam, so a
    step updates only the rows in the batch instead of all 6M numbers. The shape symmetry breaker
    (docs/synthetic-world.md) is a FIXED random linear read-out of the image embedding onto the
    colour / shape / background labels (like a random classifier head, it gives every label its
    own direction from step 0); it is not trained and not shipped.
    """
    torch.set_num_threads(THREADS)
    torch.manual_seed(config.seed)
    model_config = default_model_config()
    register_arch(ARCH, model_config)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    tokenizer = open_clip.get_tokenizer(ARCH)
    normalize = preprocess.transforms[-1]
    batches = BatchMaker(config.seed, config.batch_size, tokenizer, normalize.mean, normalize.std, config.captions,
                         TEMPLATES[0] if config.label_prompts else None)
    model.token_embedding.sparse = True
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "token_embedding.weight":
            continue
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98), eps=1e-6)
    aux_head = torch.nn.Linear(int(model_config["embed_dim"]), N_SIMPLE).requires_grad_(False)
    opt_tokens = torch.optim.SparseAdam([model.token_embedding.weight], lr=config.lr, betas=(0.9, 0.98), eps=1e-6)
    return Run(config, model_config, model, tokenizer, batches, (opt, opt_tokens), aux_head, _bf16_supported())


def step_loss(run: Run, step: int, pixels: torch.Tensor, tokens: torch.Tensor, pos: torch.Tensor,
              simple: torch.Tensor) -> torch.Tensor:
    """The loss of one batch at ``step``: contrastive (+ label prompts) and, early on, the shape read-out."""
    model, config = run.model, run.config
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=run.use_bf16):
        img_raw = model.encode_image(pixels)
        txt = model.encode_text(tokens, normalize=True)
    img = F.normalize(img_raw.float(), dim=-1)
    if config.label_prompts:  # softmax over the captions + sigmoid over the label prompts
        b = img.shape[0]
        loss = (multi_positive_clip_loss(img, txt[:b], model.logit_scale.exp(), pos[:, :b])
                + multi_positive_sigmoid_loss(img, txt[b:], torch.tensor(PROMPT_LOG_SCALE).exp(),
                                              torch.tensor(PROMPT_BIAS), pos[:, b:]))
    else:
        loss = multi_positive_clip_loss(img, txt, model.logit_scale.exp(), pos)
    aux_until = int(AUX_FRACTION * config.steps)
    if step < aux_until:  # warm-up aid: image-tower label presence (shape, colour, background)
        aux = F.binary_cross_entropy_with_logits(run.aux_head(img_raw.float()), simple, reduction="sum")
        # first half: the read-out alone, so the image tower learns shape features before the
        # contrastive loss settles on colour and background only
        loss = aux / config.batch_size + (loss if step >= aux_until // 2 else 0.0 * loss)
    return loss


def train(run: Run) -> float:
    """All steps of ``run``; returns the training time in seconds."""
    model, config = run.model, run.config
    opt, opt_tokens = run.optimizers
    log.info("pretraining %s: %d steps of %d, lr %g, %s, %d threads", ARCH, config.steps, config.batch_size,
             config.lr, "bf16 autocast" if run.use_bf16 else "fp32", THREADS)
    model.train()
    t0, data_s, running = time.time(), 0.0, 0.0
    for step in range(config.steps):
        for group in opt.param_groups + opt_tokens.param_groups:
            group["lr"] = cosine_lr(step, config.steps, config.warmup, config.lr, minimum=0.0)
        td = time.time()
        batch = run.batches()
        data_s += time.time() - td
        loss = step_loss(run, step, *batch)
        opt.zero_grad(set_to_none=True)
        opt_tokens.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        opt_tokens.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += loss.item()
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            elapsed = time.time() - t0
            log.info("step %d/%d loss %.4f lr %.2e scale %.1f | %.2f steps/s, data %.0f%%", step + 1, config.steps,
                     running / ((step % config.log_every) + 1), opt.param_groups[0]["lr"],
                     model.logit_scale.exp().item(), (step + 1) / elapsed, 100 * data_s / elapsed)
            running = 0.0
    model.token_embedding.sparse = False
    return time.time() - t0


# -- shipping ------------------------------------------------------------------------------------
def world_token_ids(tokenizer: Any) -> torch.Tensor:
    """Every token id that a caption or label prompt of the synthetic world can produce."""
    texts = list(world.caption_vocabulary())
    texts += [t.format(label=label) for t in TEMPLATES for label in world.all_labels()]
    rng = np.random.default_rng(0)
    for _ in range(200):
        texts += world.scene_captions(world.sample_scene(rng), rng)
    return torch.unique(tokenizer(texts))


def shipped_state_dict(model: torch.nn.Module, keep_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weights as shipped: float16, with untrained token-embedding rows zeroed.

    Only the few dozen tokens that occur in the world's captions and prompts are ever trained;
    the other ~49k rows of ``token_embedding.weight`` keep their random initialisation, i.e.
    noise. They are zeroed so the shipped model encodes an out-of-world word as "no word" rather
    than as a random vector, and so the weights are float16 without untrained noise.
    """
    state = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    emb = state["token_embedding.weight"]
    mask = torch.zeros(emb.shape[0], dtype=torch.bool)
    mask[keep_tokens] = True
    emb[~mask] = 0
    # 0-dim tensors (logit_scale) are stored with shape [1]: mkt.bundle hashes tensors through a
    # uint8 view, which torch refuses for 0-dim tensors; load_state_dict accepts [1] for a 0-dim
    # parameter.
    return {k: v.to(torch.float16).reshape(1) if v.ndim == 0 else v.to(torch.float16) for k, v in state.items()}


def choose_template(tag_model: Any) -> tuple[str, dict[str, float]]:
    """The template of :data:`TEMPLATES` with the best mean zero-shot mAP on a validation seed (never
    the recorded evaluation seed), and every template's score."""
    scores: dict[str, float] = {}
    for t in TEMPLATES:
        r = zero_shot_by_family(tag_model, n=300, seed=world.EVAL_SEED + 1, template=t)
        scores[t] = round(float(np.mean([f["map"] for f in r["families"].values()])), 4)
    return max(TEMPLATES, key=lambda t: (scores[t], t == TEMPLATES[0])), scores


def ship(run: Run, train_s: float) -> tuple[Bundle, dict[str, Any]]:
    """The bundle of the trained model, its template chosen and its zero-shot quality in its meta."""
    config = run.config
    keep = world_token_ids(run.tokenizer)
    bundle = Bundle(kind="clip", arch=ARCH, model_config=run.model_config,
                    state_dict=shipped_state_dict(run.model, keep), prompt={"template": TEMPLATES[0]},
                    labels=world.all_labels(), label_families=world.label_families())
    tag_model = model_from_bundle(bundle, spec="synthetic-pretrain")
    template, template_scores = choose_template(tag_model) if config.choose_template else (TEMPLATES[0], {})
    tag_model.template = template
    bundle.prompt = {"template": template}
    zero_shot = zero_shot_by_family(tag_model, n=config.eval_n)
    for family, r in zero_shot["families"].items():
        log.info("zero-shot %-10s mAP %.3f (chance %.3f)  P@10 %.3f", family, r["map"], r["chance"],
                 r["precision_at_10"])
    bundle.meta = {
        "command": config.command_line(), "seed": config.seed, "steps": config.steps,
        "batch_size": config.batch_size, "lr": config.lr, "weight_decay": WEIGHT_DECAY, "warmup": config.warmup,
        "group_size": GROUP_SIZE, "loss": "hybrid" if config.label_prompts else "contrastive",
        "label_prompts": config.label_prompts, "prompt_weight": 1.0, "aux_fraction": AUX_FRACTION,
        "captions": config.captions, "caption_p": list(config.caption_p), "group_p": list(GROUP_P),
        "precision": "bf16" if run.use_bf16 else "fp32", "train_seconds": round(train_s, 1),
        "template_scores": template_scores, "zero_shot": zero_shot, "kept_tokens": int(keep.numel()),
    }
    return bundle, zero_shot


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train the tiny CLIP on the synthetic world, save the bundle at ``config.out``; returns its meta
    with its ``version``."""
    t_start = time.time()
    run = setup(config)
    train_s = train(run)
    bundle, _ = ship(run, train_s)
    version = save_bundle(bundle, config.out)
    log.info("wrote %s (version %s, %.1f MB) in %.0f s", config.out, version, Path(config.out).stat().st_size / 1e6,
             time.time() - t_start)
    return dict(bundle.meta, version=version)


@report_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mkt.training.pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="bundle file to write (e.g. mkt/assets/synthetic.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--log-every", dest="log_every", type=int, default=50)
    parser.add_argument("--captions", choices=CAPTION_STYLES, default="full",
                        help="full: the shipped model's captions and label prompts; web: main-object captions only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pretrain(PretrainConfig(**vars(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
