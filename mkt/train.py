"""MKT training: stage 1 (image side: ranking + distillation) and stage 2 (prompt tuning).

Single process (CPU or one GPU)::

    tagscope train stage1 --init open_clip:ViT-B-16:openai --train nus/train.jsonl --images nus \
        --seen nus/seen.txt --out runs/stage1.pt
    tagscope train stage2 --init mkt:runs/stage1.pt --train nus/train.jsonl --images nus \
        --seen nus/seen.txt --out runs/mkt.pt

Several GPUs, no code change (DDP, one process per GPU)::

    torchrun --nproc_per_node=8 -m mkt.train stage1 ...same arguments...

Both stages are seeded, step-based (warm-up + cosine), resumable (``--resume``: the checkpoint
written next to ``--out`` every epoch), use AMP on CUDA, log losses and learning rate, and
write a checkpoint bundle (``mkt:PATH``) that the tagger loads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from mkt.bundle import Bundle, load_bundle, save_bundle
from mkt.data import Example, LabelledImages, Split, read_annotations, read_label_list, synthetic_split
from mkt.errors import TagscopeError
from mkt.losses import distillation_loss, ranking_loss
from mkt.model import MKT, cosine_lr, layer_decay_groups, set_trainable_blocks
from mkt.prompt import PromptEncoder, text_tower
from mkt.specs import parse_spec
from mkt.tagmodel import MKT_TEMPLATE, local_scores

log = logging.getLogger("mkt.train")

PAPER_AUGMENT = "rand-m9-mstd0.5-inc1"


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
    synthetic_seed: int = 0
    epochs: int = 20
    max_steps: int = 0                   # > 0: stop after this many steps (overrides epochs)
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup_epochs: float = 2.0
    weight_decay: float = 0.05
    layer_decay: float = 0.65
    train_blocks: int = 2
    distill_weight: float = 1.0
    top_k: int = 0                       # 0: scaled to the patch count (16 of 196)
    global_only: bool = False
    label_norm: bool = True              # the paper's label-axis normalisation in the loss
    template: str = MKT_TEMPLATE
    augment: str = PAPER_AUGMENT         # timm auto-augment string, or "none"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = 0.5
    prompt_mode: str = "coop"            # stage 2: "coop" (context vectors) or "table" (official code)
    prompt_init: str = "template"        # "template" or "random"
    n_ctx: int = 4                       # context vectors with prompt_init="random"
    seed: int = 0
    device: str = ""
    amp: bool = True
    workers: int = 2
    log_every: int = 20
    resume: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# -- distributed -------------------------------------------------------------------------------

def _dist_setup(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); under torchrun, one process per GPU (or CPU with gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and not device.startswith("cpu") else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if device:
        dev = torch.device(device)
    elif torch.cuda.is_available():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return rank, world, dev


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- data --------------------------------------------------------------------------------------

def _load_data(cfg: TrainConfig) -> tuple[Path, list[Example], Split]:
    if cfg.train == "synthetic":
        from mkt.synthetic import generate

        split = synthetic_split(cfg.synthetic_unseen, seed=cfg.synthetic_seed)
        root = Path(cfg.images or Path(cfg.out).parent / f"synthetic-train-{cfg.synthetic_seed}-{cfg.synthetic_n}")
        if not (root / "labels.jsonl").exists() and (not dist.is_initialized() or dist.get_rank() == 0):
            generate(root, n=cfg.synthetic_n, seed=1000 + cfg.synthetic_seed)
        if dist.is_initialized():
            dist.barrier()  # the other ranks read what rank 0 generated
        return root, read_annotations(root / "labels.jsonl"), split
    if not cfg.train or not cfg.images or not cfg.seen:
        raise TagscopeError("training needs --train ANNOTATIONS --images FOLDER --seen SEEN.txt "
                            "(or --train synthetic)")
    split = Split(read_label_list(cfg.seen), read_label_list(cfg.unseen) if cfg.unseen else [])
    return Path(cfg.images), read_annotations(cfg.train), split


def _train_transform(cfg: TrainConfig, preprocess: Any):
    """timm's RandAugment + RandomResizedCrop at the model's resolution and normalisation."""
    from timm.data import create_transform
    from torchvision import transforms as T

    norm = next(t for t in preprocess.transforms if isinstance(t, T.Normalize))
    size = next(t for t in preprocess.transforms if isinstance(t, T.CenterCrop)).size
    return create_transform(size[0], is_training=True, scale=cfg.crop_scale, hflip=cfg.hflip,
                            auto_augment=None if cfg.augment == "none" else cfg.augment,
                            color_jitter=0.0, interpolation="bicubic", mean=tuple(norm.mean), std=tuple(norm.std))


# -- the two stages as modules DDP can wrap ----------------------------------------------------

class _Stage1(nn.Module):
    def __init__(self, mkt: MKT) -> None:
        super().__init__()
        self.student = mkt.student
        self.mkt = mkt

    def forward(self, pixels: torch.Tensor, label_emb: torch.Tensor, label_norm: bool):
        from mkt.model import two_stream_scores, vision_features

        g, p = vision_features(self.student, pixels)
        scores = two_stream_scores(g.float(), p.float(), label_emb, self.mkt.top_k, label_norm, self.mkt.global_only)
        return scores, g.float()


class _Stage2(nn.Module):
    def __init__(self, mkt: MKT, labels: Sequence[str]) -> None:
        super().__init__()
        self.mkt = mkt
        self.labels = list(labels)
        self.prompt = mkt.prompt

    def forward(self, global_: torch.Tensor, patches: torch.Tensor, label_norm: bool) -> torch.Tensor:
        from mkt.model import two_stream_scores

        label_emb = self.mkt.label_embeddings(self.labels)
        return two_stream_scores(global_, patches, label_emb, self.mkt.top_k, label_norm, self.mkt.global_only)


# -- training ----------------------------------------------------------------------------------

def _init_model(cfg: TrainConfig, device: torch.device) -> tuple[MKT, dict[str, Any], Bundle | None]:
    from mkt.factory import create_tag_model

    spec = parse_spec(cfg.init)
    tag_model = create_tag_model(spec, device="cpu")
    init_bundle = None
    if spec.kind in ("mkt", "synthetic"):
        from mkt.factory import SYNTHETIC_BUNDLE

        init_bundle = load_bundle(SYNTHETIC_BUNDLE if spec.kind == "synthetic" else Path(spec.path).expanduser())
        arch, model_config = init_bundle.arch, init_bundle.model_config
    else:
        import open_clip

        arch, model_config = spec.arch, open_clip.get_model_config(spec.arch)
    if cfg.stage == 2 and (init_bundle is None or init_bundle.kind != "mkt"):
        log.warning("stage 2 usually starts from a stage-1 bundle (mkt:PATH); starting from %s", cfg.init)
    head = dict(init_bundle.head) if init_bundle is not None and init_bundle.kind == "mkt" else {}
    top_k = cfg.top_k or head.get("local_top_k") or 0
    global_only = cfg.global_only or bool(head.get("global_only"))
    template = cfg.template
    if cfg.stage == 2 and init_bundle is not None and init_bundle.kind == "mkt":
        template = init_bundle.prompt.get("template", template)  # prompt tuning starts from stage 1's
    mkt = MKT(tag_model.clip, tag_model.tokenizer, top_k=top_k or None, template=template,
              global_only=global_only).to(device)
    info = {"arch": arch, "model_config": model_config, "preprocess": tag_model.preprocess,
            "init_version": tag_model.version}
    return mkt, info, init_bundle


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one stage; returns a summary (losses, bundle path and version)."""
    if cfg.stage not in (1, 2):
        raise TagscopeError("stage must be 1 or 2")
    rank, world, device = _dist_setup(cfg.device)
    _seed_everything(cfg.seed + rank)
    mkt, info, _ = _init_model(cfg, device)
    root, examples, split = _load_data(cfg)
    # Images with no positive SEEN label teach the ranking loss nothing: dropped (as official).
    seen_set = set(split.seen)
    examples = [ex for ex in examples if ex.labels & seen_set]
    if not examples:
        raise TagscopeError("no training image has a positive seen label: check --seen against the annotations")
    dataset = LabelledImages(root, examples, split.seen, _train_transform(cfg, info["preprocess"]))
    sampler = DistributedSampler(dataset, seed=cfg.seed, drop_last=True) if world > 1 else None
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=cfg.workers, drop_last=len(dataset) > cfg.batch_size, generator=generator,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0)

    # What trains: stage 1 the last blocks of the image tower, stage 2 the prompt only.
    mkt.clip.requires_grad_(False)
    if cfg.stage == 1:
        set_trainable_blocks(mkt.student, cfg.train_blocks)
        net: nn.Module = _Stage1(mkt)
        groups = layer_decay_groups(mkt.student, cfg.lr, cfg.weight_decay, cfg.layer_decay)
        with torch.no_grad():
            label_emb = mkt.label_embeddings(split.seen)  # frozen text tower + fixed template
    else:
        if cfg.prompt_mode == "table":
            table = text_tower(mkt.clip).token_embedding
            table.requires_grad_(True)
            groups = [{"params": [table.weight], "lr": cfg.lr, "lr_scale": 1.0, "weight_decay": 0.0}]
        elif cfg.prompt_mode == "coop":
            mkt.prompt = PromptEncoder(mkt.clip, mkt.tokenizer, template=mkt.template, init=cfg.prompt_init,
                                       n_ctx=cfg.n_ctx).to(device)
            groups = [{"params": [mkt.prompt.context, mkt.prompt.context_suffix], "lr": cfg.lr, "lr_scale": 1.0,
                       "weight_decay": 0.0}]
        else:
            raise TagscopeError("--prompt-mode must be coop or table")
        net = _Stage2(mkt, split.seen)
        label_emb = None
    ddp_net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else net
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    steps_per_epoch = max(1, len(loader))
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch) if not cfg.max_steps else min(int(cfg.warmup_epochs *
                                                                                      steps_per_epoch), total // 10)
    out = Path(cfg.out)
    ckpt_path = out.with_name(out.stem + ".ckpt")
    log_path = out.with_name(out.stem + ".log.jsonl")
    step, start_epoch = 0, 0
    if cfg.resume:
        state = torch.load(cfg.resume, map_location=device, weights_only=False)  # our own checkpoint
        _trainable_load(mkt, state["trainable"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, start_epoch = state["step"], state["epoch"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        log.info("resumed from %s at step %d (epoch %d)", cfg.resume, step, start_epoch)

    if rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    bar = _progress(total, step, rank)
    t0 = time.time()
    epoch = start_epoch
    while step < total:
        if sampler is not None:
            sampler.set_epoch(epoch)
        generator.manual_seed(cfg.seed + epoch)
        for pixels, targets in loader:
            if step >= total:
                break
            lr_now = cosine_lr(step, total, warmup, cfg.lr, cfg.min_lr)
            for g in optimizer.param_groups:
                g["lr"] = lr_now * g.get("lr_scale", 1.0)
            pixels, targets = pixels.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            autocast = torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext()
            with autocast:
                if cfg.stage == 1:
                    scores, g_student = ddp_net(pixels, label_emb, cfg.label_norm)
                    rank_l = ranking_loss(scores.float(), targets)
                    dist_l = distillation_loss(g_student.float(), mkt.teacher_features(pixels).float()) \
                        if cfg.distill_weight > 0 else torch.zeros((), device=device)
                    loss = rank_l + cfg.distill_weight * dist_l
                else:
                    with torch.no_grad():
                        g, p = mkt.image_features(pixels)
                    scores = ddp_net(g.float(), p.float(), cfg.label_norm)
                    rank_l = ranking_loss(scores.float(), targets)
                    dist_l = torch.zeros((), device=device)
                    loss = rank_l
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            row = {"step": step, "epoch": epoch, "loss": loss.item(), "rank_loss": rank_l.item(),
                   "distill_loss": dist_l.item(), "lr": lr_now}
            history.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr_now:.2e}")
            if rank == 0 and (step % cfg.log_every == 0 or step == total):
                log.info("stage %d step %d/%d epoch %d loss %.4f (rank %.4f, distill %.4f) lr %.2e",
                         cfg.stage, step, total, epoch, row["loss"], row["rank_loss"], row["distill_loss"], lr_now)
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
        epoch += 1
        if rank == 0:
            _save_checkpoint(ckpt_path, mkt, optimizer, scaler, step, epoch, cfg)
    if bar is not None:
        bar.close()
    summary: dict[str, Any] = {"stage": cfg.stage, "steps": step, "seconds": round(time.time() - t0, 1),
                               "first_loss": _mean_loss(history[:10]), "last_loss": _mean_loss(history[-10:])}
    if rank == 0:
        if not mkt.global_only:
            balance_set = LabelledImages(root, examples[:BALANCE_IMAGES], split.seen, info["preprocess"])
            summary["local_weight"] = stream_balance(mkt, balance_set, split.seen, cfg.batch_size, device)
        bundle = _make_bundle(cfg, mkt, info, split, summary)
        summary["bundle"] = str(out)
        summary["version"] = save_bundle(bundle, out)
        log.info("wrote %s (version %s)", out, summary["version"])
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary


BALANCE_IMAGES = 512  # training images (eval transform) that fit the product score's stream weight


@torch.no_grad()
def stream_balance(mkt: MKT, dataset: LabelledImages, labels: Sequence[str], batch_size: int,
                   device: torch.device) -> float:
    """The local stream's weight in the label-independent product score (TagModel.score).

    std of the global cosines / std of the local (top-k patch) cosines over every (image, seen
    label) pair of ``dataset``: with it, both streams spread equally, which the paper's score
    gets per image from its label-axis normalisation. Fixed at training time, so a stored score
    still does not depend on which labels are scored together.
    """
    mkt.eval()
    label_emb = mkt.label_embeddings(labels)
    g_scores, l_scores = [], []
    for pixels, _ in DataLoader(dataset, batch_size=batch_size):
        g, p = mkt.image_features(pixels.to(device))
        g, p = F.normalize(g.float(), dim=-1), F.normalize(p.float(), dim=-1)
        g_scores.append(g @ label_emb.T)
        l_scores.append(local_scores(p, label_emb, mkt.top_k))
    spread_g, spread_l = torch.cat(g_scores).std().item(), torch.cat(l_scores).std().item()
    if not (spread_l > 1e-8 and spread_g > 1e-8):
        return 1.0
    return round(spread_g / spread_l, 4)


def _mean_loss(rows: list[dict[str, float]]) -> float | None:
    return round(sum(r["loss"] for r in rows) / len(rows), 5) if rows else None


def _progress(total: int, start: int, rank: int):
    if rank != 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", desc="training", file=sys.stderr, dynamic_ncols=True)


def _trainable_state(mkt: MKT) -> dict[str, torch.Tensor]:
    state = {f"clip.{n}": p.detach().cpu() for n, p in mkt.clip.named_parameters() if p.requires_grad}
    if mkt.prompt is not None:
        state.update({f"prompt.{n}": p.detach().cpu() for n, p in mkt.prompt.named_parameters(recurse=False)})
    return state


def _trainable_load(mkt: MKT, state: dict[str, torch.Tensor]) -> None:
    params = dict(mkt.clip.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            if name.startswith("clip."):
                params[name[5:]].copy_(value)
            elif name.startswith("prompt.") and mkt.prompt is not None:
                getattr(mkt.prompt, name[7:]).copy_(value)


def _save_checkpoint(path: Path, mkt: MKT, optimizer, scaler, step: int, epoch: int, cfg: TrainConfig) -> None:
    state = {"trainable": _trainable_state(mkt), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
             "step": step, "epoch": epoch, "config": asdict(cfg),
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _make_bundle(cfg: TrainConfig, mkt: MKT, info: dict[str, Any], split: Split, summary: dict) -> Bundle:
    prompt: dict[str, Any] = {"template": mkt.template}
    if mkt.prompt is not None:
        prompt = mkt.prompt.bundle_prompt()
    return Bundle(
        kind="mkt",
        arch=info["arch"],
        model_config=info["model_config"],
        state_dict={k: v.detach().cpu() for k, v in mkt.clip.state_dict().items()},
        prompt=prompt,
        head={"local_top_k": 0 if mkt.global_only else mkt.top_k, "global_only": mkt.global_only,
              "two_stream_top_k": mkt.top_k, "local_weight": summary.get("local_weight", 1.0)},
        labels=split.all,
        label_families={"seen": split.seen, "unseen": split.unseen},
        meta={"command": " ".join(sys.argv), "stage": cfg.stage, "init": cfg.init,
              "init_version": info["init_version"], "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
              "summary": summary},
    )


# -- command line ------------------------------------------------------------------------------

def build_parser(prog: str = "python -m mkt.train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train MKT (stage 1: image side; stage 2: prompt).")
    p.add_argument("stage", choices=["stage1", "stage2"])
    p.add_argument("--init", required=True, help="model to start from: open_clip:ARCH:PRETRAINED, synthetic, "
                                                 "or (stage 2) mkt:STAGE1.pt")
    p.add_argument("--out", required=True, help="bundle to write")
    p.add_argument("--train", default="", help="annotations JSONL/CSV, or 'synthetic'")
    p.add_argument("--images", default="", help="folder the annotation paths are relative to")
    p.add_argument("--seen", default="", help="seen labels, one per line")
    p.add_argument("--unseen", default="", help="unseen labels (kept in the bundle's vocabulary)")
    d = TrainConfig(stage=1, init="", out="")
    p.add_argument("--epochs", type=int, default=None, help="default: 20 for stage 1, 4 for stage 2 (official)")
    p.add_argument("--warmup-epochs", type=float, default=None, help="default: 2 for stage 1, 0 for stage 2")
    for name in ("synthetic_n", "synthetic_unseen", "synthetic_seed", "max_steps", "batch_size",
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
    values["stage"] = 1 if values.pop("stage") == "stage1" else 2
    values["crop_scale"] = tuple(values["crop_scale"])
    stage_defaults = {"epochs": (20, 4), "warmup_epochs": (2.0, 0.0)}  # official recipe per stage
    for name, per_stage in stage_defaults.items():
        if values[name] is None:
            values[name] = per_stage[values["stage"] - 1]
    return TrainConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    cfg = config_from_args(build_parser().parse_args(argv))
    try:
        summary = train(cfg)
    except TagscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
