"""Training checkpoints (``--resume``): the trainable weights, optimizer, loss scaler, position
and random states of an MKT run, written atomically at the end of every epoch.

A checkpoint is not a bundle: it holds only what trains (the fine-tuned image blocks, the
prompt context or token table) and is read back by the same code that wrote it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_write
from mkt.training.config import TrainConfig
from mkt.training.model import MKT

log = logging.getLogger("mkt.training.train")


def checkpoint_path(out: str | Path) -> Path:
    """The checkpoint written next to the bundle ``out`` (``runs/s1.pt`` -> ``runs/s1.ckpt``)."""
    out = Path(out)
    return out.with_name(out.stem + ".ckpt")


def trainable_state(mkt: MKT) -> dict[str, torch.Tensor]:
    state = {f"clip.{n}": p.detach().cpu() for n, p in mkt.clip.named_parameters() if p.requires_grad}
    if mkt.prompt is not None:
        state.update({f"prompt.{n}": p.detach().cpu() for n, p in mkt.prompt.named_parameters(recurse=False)})
    return state


def load_trainable(mkt: MKT, state: dict[str, torch.Tensor]) -> None:
    params = dict(mkt.clip.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            if name.startswith("clip."):
                params[name[5:]].copy_(value)
            elif name.startswith("prompt.") and mkt.prompt is not None:
                getattr(mkt.prompt, name[7:]).copy_(value)


def save_checkpoint(path: Path, mkt: MKT, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    step: int, epoch: int, cfg: TrainConfig) -> None:
    state = {"trainable": trainable_state(mkt), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
             "step": step, "epoch": epoch, "config": asdict(cfg),
             "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def resume_checkpoint(path: str | Path, mkt: MKT, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                      device: torch.device) -> tuple[int, int]:
    """Restore a run from its checkpoint; returns (step, epoch) to continue at."""
    state: dict[str, Any] = torch.load(path, map_location=device, weights_only=False)  # our own checkpoint
    load_trainable(mkt, state["trainable"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    log.info("resumed from %s at step %d (epoch %d)", path, state["step"], state["epoch"])
    return state["step"], state["epoch"]
