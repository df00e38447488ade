"""The two MKT training stages: what each trains, its optimizer groups and its per-batch loss.

- :class:`Stage1` (image side): the last blocks of the image tower, with layer-wise LR decay,
  learn from the ranking loss against the frozen template's label embeddings plus the
  distillation loss to the frozen teacher.
- :class:`Stage2` (label side, prompt tuning): everything frozen but the prompt (CoOp context
  vectors, or the official code's token-embedding table); ranking loss only.

The shared loop (:mod:`mkt.training.train`) wraps ``stage.net`` in DDP and calls ``stage.losses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from core.errors import TagscopeError
from mkt.prompt import PromptEncoder, text_tower
from mkt.tagmodel import vision_features
from mkt.training.config import TrainConfig
from mkt.training.losses import distillation_loss, ranking_loss
from mkt.training.model import MKT, layer_decay_groups, set_trainable_blocks, two_stream_scores

Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (loss, ranking loss, distillation loss)


class _ImageSideNet(nn.Module):
    """Stage 1's forward pass, as a module DDP can wrap: student features -> two-stream scores."""

    def __init__(self, mkt: MKT) -> None:
        super().__init__()
        self.student = mkt.student
        self.mkt = mkt

    def forward(self, pixels: torch.Tensor, label_emb: torch.Tensor, label_norm: bool):
        g, p = vision_features(self.student, pixels)
        scores = two_stream_scores(g.float(), p.float(), label_emb, self.mkt.top_k, label_norm, self.mkt.global_only)
        return scores, g.float()


class _PromptNet(nn.Module):
    """Stage 2's forward pass, as a module DDP can wrap: prompt -> label embeddings -> scores."""

    def __init__(self, mkt: MKT, labels: Sequence[str]) -> None:
        super().__init__()
        self.mkt = mkt
        self.labels = list(labels)
        self.prompt = mkt.prompt

    def forward(self, global_: torch.Tensor, patches: torch.Tensor, label_norm: bool) -> torch.Tensor:
        label_emb = self.mkt.label_embeddings(self.labels)
        return two_stream_scores(global_, patches, label_emb, self.mkt.top_k, label_norm, self.mkt.global_only)


class Stage1:
    """Image side: ranking + distillation, the last ``train_blocks`` blocks with layer-wise LR decay."""

    number: ClassVar[int] = 1
    continues_stage1: ClassVar[bool] = False

    def __init__(self, cfg: TrainConfig, mkt: MKT, seen: Sequence[str], device: torch.device) -> None:
        self.cfg, self.mkt, self.device = cfg, mkt, device
        set_trainable_blocks(mkt.student, cfg.train_blocks)
        self.net: nn.Module = _ImageSideNet(mkt)
        self.param_groups = layer_decay_groups(mkt.student, cfg.lr, cfg.weight_decay, cfg.layer_decay)
        with torch.no_grad():
            self.label_emb = mkt.label_embeddings(seen)  # frozen text tower + fixed template

    def losses(self, net: nn.Module, pixels: torch.Tensor, targets: torch.Tensor) -> Losses:
        cfg = self.cfg
        scores, g_student = net(pixels, self.label_emb, cfg.label_norm)
        rank_l = ranking_loss(scores.float(), targets)
        dist_l = distillation_loss(g_student.float(), self.mkt.teacher_features(pixels).float()) \
            if cfg.distill_weight > 0 else torch.zeros((), device=self.device)
        return rank_l + cfg.distill_weight * dist_l, rank_l, dist_l


class Stage2:
    """Label side: prompt tuning (CoOp context, or the token table) with the image side frozen."""

    number: ClassVar[int] = 2
    continues_stage1: ClassVar[bool] = True  # starts from a stage-1 bundle and its template

    def __init__(self, cfg: TrainConfig, mkt: MKT, seen: Sequence[str], device: torch.device) -> None:
        self.cfg, self.mkt, self.device = cfg, mkt, device
        self.param_groups = self._prompt_groups(cfg, mkt, device)
        self.net: nn.Module = _PromptNet(mkt, seen)

    @staticmethod
    def _prompt_groups(cfg: TrainConfig, mkt: MKT, device: torch.device) -> list[dict[str, Any]]:
        if cfg.prompt_mode == "table":
            table = text_tower(mkt.clip).token_embedding
            table.requires_grad_(True)
            params = [table.weight]
        elif cfg.prompt_mode == "coop":
            mkt.prompt = PromptEncoder(mkt.clip, mkt.tokenizer, template=mkt.template, init=cfg.prompt_init,
                                       n_ctx=cfg.n_ctx).to(device)
            params = [mkt.prompt.context, mkt.prompt.context_suffix]
        else:
            raise TagscopeError("--prompt-mode must be coop or table")
        return [{"params": params, "lr": cfg.lr, "lr_scale": 1.0, "weight_decay": 0.0}]

    def losses(self, net: nn.Module, pixels: torch.Tensor, targets: torch.Tensor) -> Losses:
        with torch.no_grad():
            g, p = self.mkt.image_features(pixels)
        scores = net(g.float(), p.float(), self.cfg.label_norm)
        rank_l = ranking_loss(scores.float(), targets)
        return rank_l, rank_l, torch.zeros((), device=self.device)


STAGES: dict[int, type[Stage1] | type[Stage2]] = {1: Stage1, 2: Stage2}


def build_stage(cfg: TrainConfig, mkt: MKT, seen: Sequence[str], device: torch.device) -> Stage1 | Stage2:
    """Freeze the whole CLIP, then let the stage unfreeze (or add) what it trains."""
    mkt.clip.requires_grad_(False)
    return STAGES[cfg.stage](cfg, mkt, seen, device)
