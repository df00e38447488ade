"""MKT training: stage 1 (image side: ranking + distillation) and stage 2 (prompt tuning).

Single process (CPU or one GPU)::

    tagscope train stage1 --init open_clip:ViT-B-16:openai --train nus/train.jsonl --images nus \
        --seen nus/seen.txt --out runs/stage1.pt
    tagscope train stage2 --init mkt:runs/stage1.pt --train nus/train.jsonl --images nus \
        --seen nus/seen.txt --out runs/mkt.pt

Several GPUs, no code change (DDP, one process per GPU)::

    torchrun --nproc_per_node=8 -m mkt.training.train stage1 ...same arguments...

Both stages are seeded, step-based (warm-up + cosine), resumable (``--resume``: the checkpoint
written next to ``--out`` every epoch), use AMP on CUDA, log losses and learning rate, and
write a checkpoint bundle (``mkt:PATH``) that the tagger loads.

Here: the loop both stages share, and the bundle it ends with. The config and the per-stage
defaults are in :mod:`mkt.training.config`, what each stage trains and its loss in
:mod:`mkt.training.stages`, the data in :mod:`mkt.training.batches`, checkpoints in :mod:`mkt.training.checkpoint`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from core.errors import report_user_errors
from core.modelspec import parse_spec
from mkt.bundle import Bundle, load_bundle, save_bundle
from mkt.factory import bundle_path, create_tag_model
from mkt.tagmodel import local_scores
from mkt.training.batches import Batches, TrainingData, make_batches, training_data
from mkt.training.checkpoint import checkpoint_path, resume_checkpoint, save_checkpoint
from mkt.training.config import PAPER_AUGMENT, STAGE_DEFAULTS, TrainConfig, build_parser, config_from_args
from mkt.training.data import LabelledImages
from mkt.training.model import MKT, cosine_lr
from mkt.training.stages import STAGES, Stage1, Stage2, build_stage

__all__ = ["BALANCE_IMAGES", "PAPER_AUGMENT", "STAGE_DEFAULTS", "TrainConfig", "build_parser", "config_from_args",
           "main", "stream_balance", "train"]

log = logging.getLogger("mkt.training.train")


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


def _dist_teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _wrap_ddp(net: nn.Module, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- the model a run starts from ---------------------------------------------------------------

def _init_model(cfg: TrainConfig, device: torch.device) -> tuple[MKT, dict[str, Any]]:
    spec = parse_spec(cfg.init)
    tag_model = create_tag_model(spec, device="cpu")
    init_bundle = None
    if bundle_path(spec) is not None:
        init_bundle = load_bundle(bundle_path(spec))
        arch, model_config = init_bundle.arch, init_bundle.model_config
    else:
        import open_clip

        arch, model_config = spec.arch, open_clip.get_model_config(spec.arch)
    from_mkt = init_bundle is not None and init_bundle.kind == "mkt"
    continues_stage1 = STAGES[cfg.stage].continues_stage1
    if continues_stage1 and not from_mkt:
        log.warning("stage 2 usually starts from a stage-1 bundle (mkt:PATH); starting from %s", cfg.init)
    head = dict(init_bundle.head) if from_mkt else {}
    top_k = cfg.top_k or head.get("local_top_k") or 0
    global_only = cfg.global_only or bool(head.get("global_only"))
    template = cfg.template
    if continues_stage1 and from_mkt:
        template = init_bundle.prompt.get("template", template)  # prompt tuning starts from stage 1's
    mkt = MKT(tag_model.clip, tag_model.tokenizer, top_k=top_k or None, template=template,
              global_only=global_only).to(device)
    info = {"arch": arch, "model_config": model_config, "preprocess": tag_model.preprocess,
            "init_version": tag_model.version}
    return mkt, info


# -- the shared loop ---------------------------------------------------------------------------

@dataclass
class Schedule:
    """Step-based: linear warm-up then cosine over ``total`` steps (see :func:`mkt.training.model.cosine_lr`)."""

    total: int
    warmup: int

    @classmethod
    def of(cls, cfg: TrainConfig, steps_per_epoch: int) -> Schedule:
        steps_per_epoch = max(1, steps_per_epoch)
        total = cfg.max_steps or cfg.epochs * steps_per_epoch
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        return cls(total, min(warmup, total // 10) if cfg.max_steps else warmup)


class Precision:
    """AMP on CUDA (bf16 where supported, else fp16 with a loss scaler); full precision elsewhere."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.enabled = cfg.amp and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.enabled else nullcontext()


class StepLog:
    """Every step's losses and learning rate: kept for the summary, logged and appended to
    ``OUT.log.jsonl`` every ``log_every`` steps (rank 0), and a progress bar on a terminal."""

    def __init__(self, cfg: TrainConfig, total: int, start: int, rank: int) -> None:
        out = Path(cfg.out)
        self.path = out.with_name(out.stem + ".log.jsonl")
        self.cfg, self.total, self.rank = cfg, total, rank
        self.rows: list[dict[str, float]] = []
        self.bar = _progress(total, start, rank)

    def record(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
        step = row["step"]
        if self.rank == 0 and (step % self.cfg.log_every == 0 or step == self.total):
            log.info("stage %d step %d/%d epoch %d loss %.4f (rank %.4f, distill %.4f) lr %.2e", self.cfg.stage,
                     step, self.total, row["epoch"], row["loss"], row["rank_loss"], row["distill_loss"], row["lr"])
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def close(self) -> dict[str, float | None]:
        if self.bar is not None:
            self.bar.close()
        return {"first_loss": _mean_loss(self.rows[:10]), "last_loss": _mean_loss(self.rows[-10:])}


def _mean_loss(rows: list[dict[str, float]]) -> float | None:
    return round(sum(r["loss"] for r in rows) / len(rows), 5) if rows else None


def _progress(total: int, start: int, rank: int):
    if rank != 0 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", desc="training", file=sys.stderr, dynamic_ncols=True)


@dataclass
class _Run:
    """What the loop needs, once set up."""

    cfg: TrainConfig
    stage: Stage1 | Stage2
    net: nn.Module  # stage.net, under DDP when distributed
    optimizer: torch.optim.Optimizer
    precision: Precision
    batches: Batches
    schedule: Schedule
    device: torch.device
    rank: int


def _step(run: _Run, step: int, epoch: int, pixels: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """One optimizer step at ``step``; returns its log row."""
    cfg, schedule, optimizer = run.cfg, run.schedule, run.optimizer
    lr_now = cosine_lr(step, schedule.total, schedule.warmup, cfg.lr, cfg.min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr_now * group.get("lr_scale", 1.0)
    pixels, targets = pixels.to(run.device, non_blocking=True), targets.to(run.device, non_blocking=True)
    with run.precision.autocast():
        loss, rank_l, dist_l = run.stage.losses(run.net, pixels, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler = run.precision.scaler
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return {"step": step + 1, "epoch": epoch, "loss": loss.item(), "rank_loss": rank_l.item(),
            "distill_loss": dist_l.item(), "lr": lr_now}


def _loop(run: _Run, step: int, epoch: int, steps: StepLog) -> int:
    """Epochs of steps until the schedule's total, a checkpoint after each epoch; returns the step reached."""
    cfg, total = run.cfg, run.schedule.total
    ckpt_path = checkpoint_path(cfg.out)
    while step < total:
        run.batches.start_epoch(epoch, cfg.seed)
        for pixels, targets in run.batches.loader:
            if step >= total:
                break
            steps.record(_step(run, step, epoch, pixels, targets))
            step += 1
        epoch += 1
        if run.rank == 0:
            save_checkpoint(ckpt_path, run.stage.mkt, run.optimizer, run.precision.scaler, step, epoch, cfg)
    return step


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one stage; returns a summary (losses, bundle path and version)."""
    rank, world, device = _dist_setup(cfg.device)
    _seed_everything(cfg.seed + rank)
    mkt, info = _init_model(cfg, device)
    data = training_data(cfg)
    batches = make_batches(cfg, data, info["preprocess"], world, device)
    stage = build_stage(cfg, mkt, data.split.seen, device)
    optimizer = torch.optim.AdamW(stage.param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(cfg, stage, _wrap_ddp(stage.net, world, device), optimizer, Precision(cfg, device), batches,
               Schedule.of(cfg, len(batches.loader)), device, rank)
    step, epoch = 0, 0
    if cfg.resume:
        step, epoch = resume_checkpoint(cfg.resume, mkt, optimizer, run.precision.scaler, device)
    if rank == 0:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    steps = StepLog(cfg, run.schedule.total, step, rank)
    t0 = time.time()
    step = _loop(run, step, epoch, steps)
    losses = steps.close()
    summary: dict[str, Any] = {"stage": cfg.stage, "steps": step, "seconds": round(time.time() - t0, 1), **losses}
    if rank == 0:
        _write_bundle(cfg, mkt, info, data, summary, device)
    _dist_teardown()
    return summary


# -- the bundle --------------------------------------------------------------------------------

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


def _write_bundle(cfg: TrainConfig, mkt: MKT, info: dict[str, Any], data: TrainingData, summary: dict[str, Any],
                  device: torch.device) -> None:
    """Fit the stream balance, write the bundle to ``cfg.out``; adds both to ``summary``."""
    if not mkt.global_only:
        balance_set = LabelledImages(data.root, data.examples[:BALANCE_IMAGES], data.split.seen, info["preprocess"])
        summary["local_weight"] = stream_balance(mkt, balance_set, data.split.seen, cfg.batch_size, device)
    bundle = _make_bundle(cfg, mkt, info, data, summary)
    summary["bundle"] = str(cfg.out)
    summary["version"] = save_bundle(bundle, Path(cfg.out))
    log.info("wrote %s (version %s)", cfg.out, summary["version"])


def _make_bundle(cfg: TrainConfig, mkt: MKT, info: dict[str, Any], data: TrainingData, summary: dict) -> Bundle:
    prompt: dict[str, Any] = {"template": mkt.template}
    if mkt.prompt is not None:
        prompt = mkt.prompt.bundle_prompt()
    split = data.split
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

@report_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    summary = train(config_from_args(build_parser().parse_args(argv)))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
