"""Contrastive pretraining of the tiny open_clip model on the synthetic world (CPU, ~10 minutes).

    python -m mkt.pretrain_synthetic --out mkt/assets/synthetic.pt --seed 0 --steps 1200 --batch-size 128 --lr 0.001

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
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from mkt import synthetic as world
from mkt.bundle import Bundle, save_bundle
from mkt.factory import MODEL_CONFIG_DIR, _register_arch, model_from_bundle

log = logging.getLogger(__name__)

ARCH = "tagscope-tiny"
TEMPLATES = ("a photo of a {label}.", "{label}.", "a {label}.")
# Probability of each caption kind of world.caption_facts: full description, objects only,
# one compound, one shape, one colour, the background.
CAPTION_P = (0.35, 0.1, 0.15, 0.15, 0.1, 0.15)
# The same for web-style captions (world.main_caption_facts): compound, compound on background,
# shape, colour, background; all of them about the main object only.
WEB_CAPTION_P = (0.5, 0.2, 0.1, 0.1, 0.1)
CAPTION_STYLES = ("full", "web")
# Probability of each minimal-pair group kind of world.GROUP_KINDS: shape, background, colour, random.
GROUP_P = (0.25, 0.25, 0.25, 0.25)


def default_model_config() -> dict[str, Any]:
    return json.loads((MODEL_CONFIG_DIR / f"{ARCH}.json").read_text())


# -- data --------------------------------------------------------------------------------------
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

    def __init__(self, seed: int, batch_size: int, group_size: int, tokenizer: Any,
                 mean: Sequence[float], std: Sequence[float], caption_p: Sequence[float] = CAPTION_P,
                 group_p: Sequence[float] = GROUP_P, label_prompts: str | None = None,
                 captions: str = "full") -> None:
        if captions not in CAPTION_STYLES:
            raise ValueError(f"captions must be one of {CAPTION_STYLES}, not {captions!r}")
        # "full": captions may describe every object, and an image's positives are all captions true of
        # it; "web": captions name the main object only, and so do the facts that make a positive.
        self.caption_fn = world.caption_facts if captions == "full" else world.main_caption_facts
        self.image_facts = world.scene_facts if captions == "full" else world.main_facts
        # Optionally every batch also holds the prompt of every label of the world, as extra texts.
        self.prompt_texts = [label_prompts.format(label=x) for x in world.all_labels()] if label_prompts else []
        self.prompt_facts = world.label_facts() if label_prompts else []
        self.caption_p = np.array(caption_p, dtype=np.float64) / np.sum(caption_p)
        self.group_p = np.array(group_p, dtype=np.float64) / np.sum(group_p)
        self.rng = np.random.default_rng(seed)
        self.batch_size = batch_size
        self.group_size = max(1, group_size)
        self.tokenizer = tokenizer
        self.mean = np.array(mean, dtype=np.float32) * 255.0
        self.std = np.array(std, dtype=np.float32) * 255.0
        self.token_cache: dict[str, torch.Tensor] = {}
        self.facts = FactIndex()
        n_simple = len(world.COLOURS) + len(world.SHAPES) + len(world.BACKGROUNDS)
        self.simple_facts = world.label_facts()[:n_simple]  # colour, shape, background labels

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
            scenes.extend(world.sample_group(rng, self.group_size, kind))
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


# -- loss and schedule ---------------------------------------------------------------------------
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


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _bf16_supported() -> bool:
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")
                    or torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # older torch without the probe
        return False


# -- shipping -------------------------------------------------------------------------------------
def world_token_ids(tokenizer: Any) -> torch.Tensor:
    """Every token id that a caption or label prompt of the synthetic world can produce."""
    texts = list(world.caption_vocabulary())
    texts += [t.format(label=label) for t in TEMPLATES for label in world.all_labels()]
    rng = np.random.default_rng(0)
    for _ in range(200):
        texts += world.sample_scene(rng).captions(rng)
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


def command_line(out_path: str | Path, seed: int, steps: int, batch_size: int, lr: float, captions: str = "full"
                 ) -> str:
    return (f"python -m mkt.pretrain_synthetic --out {out_path} --seed {seed} --steps {steps} "
            f"--batch-size {batch_size} --lr {lr:g}" + (f" --captions {captions}" if captions != "full" else ""))


# -- training ---------------------------------------------------------------------------------------
def pretrain(out_path: str | Path, seed: int = 0, steps: int = 1200, batch_size: int = 128, lr: float = 1e-3,
             *, weight_decay: float = 0.1, warmup: int | None = None, group_size: int = 4,
             log_every: int = 50, eval_n: int = 500, precision: str = "auto", threads: int = 2,
             model_config: dict[str, Any] | None = None, choose_template: bool = True,
             caption_p: Sequence[float] | None = None, group_p: Sequence[float] = GROUP_P,
             loss_kind: str = "hybrid", label_prompts: bool | None = None, prompt_weight: float = 1.0,
             aux_fraction: float = 0.6, captions: str = "full") -> dict[str, Any]:
    """Train the tiny CLIP on the synthetic world, save the bundle at ``out_path``; returns its meta.

    ``captions="web"`` trains a CLIP the way web data would: one caption per image naming its main
    object only, plain contrastive loss, no label prompts; it is the baseline of the MKT experiments
    (docs/mkt.md). The shipped model uses ``"full"``.
    """
    if caption_p is None:
        caption_p = CAPTION_P if captions == "full" else WEB_CAPTION_P
    if label_prompts is None:
        label_prompts = captions == "full"
    t_start = time.time()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    config = model_config or default_model_config()
    _register_arch(ARCH, config)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    tokenizer = open_clip.get_tokenizer(ARCH)
    normalize = preprocess.transforms[-1]
    batches = BatchMaker(seed, batch_size, group_size, tokenizer, normalize.mean, normalize.std, caption_p, group_p,
                          TEMPLATES[0] if label_prompts else None, captions)

    use_bf16 = precision == "bf16" or (precision == "auto" and _bf16_supported())
    # The token table (49408 rows, a few dozen used) gets sparse gradients and SparseAdam, so a
    # step updates only the rows in the batch instead of all 6M numbers.
    model.token_embedding.sparse = True
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "token_embedding.weight":
            continue
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    # Scale and bias of the label-prompt sigmoid loss: fixed constants (exp(scale) = 10, bias -4
    # for hybrid, SigLIP's -10 otherwise), training-only, not part of the shipped model.
    logit_bias = torch.tensor(-10.0 if loss_kind != "hybrid" else -4.0)
    prompt_scale = torch.tensor(math.log(10.0))
    if loss_kind in ("sigmoid", "both"):
        with torch.no_grad():
            model.logit_scale.fill_(math.log(10.0))
    # Symmetry breaker for shape (see docs/synthetic-world.md): for the first ``aux_fraction`` of
    # the steps, the image embedding must also predict which colour / shape / background labels
    # are present through a FIXED random linear read-out (BCE; like a random classifier head, it
    # gives every label its own direction from step 0). Alone for the first half of that phase,
    # then added to the contrastive loss. The read-out is not trained and not shipped.
    aux_until = int(aux_fraction * steps)
    n_simple = len(world.COLOURS) + len(world.SHAPES) + len(world.BACKGROUNDS)
    aux_head = torch.nn.Linear(int(config["embed_dim"]), n_simple).requires_grad_(False)
    opt_tokens = torch.optim.SparseAdam([model.token_embedding.weight], lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20) if warmup is None else max(1, warmup)
    log.info("pretraining %s: %d steps of %d, lr %g, %s, %d threads", ARCH, steps, batch_size, lr,
             "bf16 autocast" if use_bf16 else "fp32", threads)
    model.train()
    t0, data_s, running = time.time(), 0.0, 0.0
    for step in range(steps):
        for group in opt.param_groups + opt_tokens.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        td = time.time()
        pixels, tokens, pos, simple = batches()
        data_s += time.time() - td
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            img_raw = model.encode_image(pixels)
            txt = model.encode_text(tokens, normalize=True)
        img = F.normalize(img_raw.float(), dim=-1)
        if loss_kind == "hybrid" and label_prompts:  # softmax over captions + sigmoid over label prompts
            b = img.shape[0]
            loss = (multi_positive_clip_loss(img, txt[:b], model.logit_scale.exp(), pos[:, :b])
                    + prompt_weight * multi_positive_sigmoid_loss(img, txt[b:], prompt_scale.exp(), logit_bias,
                                                                  pos[:, b:]))
        elif loss_kind == "softmax" or not label_prompts:
            loss = multi_positive_clip_loss(img, txt, model.logit_scale.exp(), pos)
        elif loss_kind == "sigmoid":
            loss = multi_positive_sigmoid_loss(img, txt, model.logit_scale.exp(), logit_bias, pos)
        else:
            loss = (multi_positive_clip_loss(img, txt, model.logit_scale.exp(), pos)
                    + multi_positive_sigmoid_loss(img, txt, model.logit_scale.exp(), logit_bias, pos))
        if step < aux_until:  # warm-up aid: image-tower label presence (shape, colour, background)
            aux = F.binary_cross_entropy_with_logits(aux_head(img_raw.float()), simple, reduction="sum")
            # first half: the read-out alone, so the image tower learns shape features before the
            # contrastive loss settles on colour and background only
            loss = aux / batch_size + (loss if step >= aux_until // 2 else 0.0 * loss)
        opt.zero_grad(set_to_none=True)
        opt_tokens.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        opt_tokens.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = (step % log_every) + 1
            elapsed = time.time() - t0
            log.info("step %d/%d loss %.4f lr %.2e scale %.1f | %.2f steps/s, data %.0f%%", step + 1, steps,
                     running / n, opt.param_groups[0]["lr"], model.logit_scale.exp().item(),
                     (step + 1) / elapsed, 100 * data_s / elapsed)
            running = 0.0
    train_s = time.time() - t0
    model.token_embedding.sparse = False

    keep = world_token_ids(tokenizer)
    bundle = Bundle(kind="clip", arch=ARCH, model_config=config, state_dict=shipped_state_dict(model, keep),
                    prompt={"template": TEMPLATES[0]}, labels=world.all_labels(),
                    label_families=world.label_families())
    tag_model = model_from_bundle(bundle, spec="synthetic-pretrain")
    template = TEMPLATES[0]
    template_scores: dict[str, float] = {}
    if choose_template:  # on a validation seed, never the recorded evaluation seed
        for t in TEMPLATES:
            r = world.evaluate_zero_shot(tag_model, n=300, seed=world.EVAL_SEED + 1, template=t)
            template_scores[t] = round(float(np.mean([f["map"] for f in r["families"].values()])), 4)
        template = max(TEMPLATES, key=lambda t: (template_scores[t], t == TEMPLATES[0]))
    tag_model.template = template
    bundle.prompt = {"template": template}
    zero_shot = world.evaluate_zero_shot(tag_model, n=eval_n)
    for family, r in zero_shot["families"].items():
        log.info("zero-shot %-10s mAP %.3f (chance %.3f)  P@10 %.3f", family, r["map"], r["chance"],
                 r["precision_at_10"])
    bundle.meta = {
        "command": command_line(out_path, seed, steps, batch_size, lr, captions),
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup": warmup,
        "group_size": group_size,
        "loss": loss_kind,
        "label_prompts": label_prompts,
        "prompt_weight": prompt_weight,
        "aux_fraction": aux_fraction,
        "captions": captions,
        "caption_p": list(caption_p),
        "group_p": list(group_p),
        "precision": "bf16" if use_bf16 else "fp32",
        "train_seconds": round(train_s, 1),
        "template_scores": template_scores,
        "zero_shot": zero_shot,
        "kept_tokens": int(keep.numel()),
    }
    version = save_bundle(bundle, out_path)
    log.info("wrote %s (version %s, %.1f MB) in %.0f s", out_path, version, Path(out_path).stat().st_size / 1e6,
             time.time() - t_start)
    return dict(bundle.meta, version=version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mkt.pretrain_synthetic", description=__doc__.split("\n")[0])
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
    pretrain(args.out, seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
             log_every=args.log_every, captions=args.captions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
