"""The MKT model: a CLIP image tower fine-tuned as the student, a frozen copy as the
distillation teacher, and the frozen CLIP text tower behind a (learnable) prompt.

Scoring (METHOD.md): for label embeddings t_c,
  global  s_g[c] = <g, t_c>                 g = projected CLS feature
  local   s_l[c] = mean of top-k <p_i, t_c> p_i = projected patch features
  score   s = (s_g + s_l) / 2, with each stream first L2-normalised across the label axis
          (the paper's, and official code's, score; ``label_norm=True``).
The product stores a label-independent variant (see :meth:`mkt.tagmodel.TagModel.score`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from mkt.prompt import PromptEncoder
from mkt.tagmodel import MKT_TEMPLATE, embed_label_texts, local_scores, vision_features

# The official code's k = 16 for 196 patches; other patch counts scale it.
TOP_K_PER_PATCH = 16 / 196


def default_top_k(num_patches: int) -> int:
    return max(1, round(TOP_K_PER_PATCH * num_patches))


def num_patches(visual: nn.Module) -> int:
    grid = getattr(visual, "grid_size", None)
    if grid is None:
        raise TypeError("MKT needs a ViT image tower with patch tokens (an open_clip VisionTransformer)")
    return int(grid[0] * grid[1])


def two_stream_scores(global_: torch.Tensor, patches: torch.Tensor | None, label_emb: torch.Tensor, top_k: int,
                      label_norm: bool = True, global_only: bool = False) -> torch.Tensor:
    """The MKT score [B, C]; ``label_norm`` applies the paper's label-axis normalisation."""
    s_g = global_ @ label_emb.T
    if label_norm:
        s_g = s_g / s_g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if global_only or patches is None:
        return s_g
    s_l = local_scores(patches, label_emb, top_k)
    if label_norm:
        s_l = s_l / s_l.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (s_g + s_l) / 2


class MKT(nn.Module):
    """Student + teacher image towers and a prompt-driven label encoder around one CLIP model."""

    def __init__(self, clip: nn.Module, tokenizer: Callable[[Sequence[str]], torch.Tensor], *,
                 top_k: int | None = None, template: str = MKT_TEMPLATE, global_only: bool = False,
                 prompt: PromptEncoder | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.template = template
        self.global_only = global_only
        self.top_k = top_k or default_top_k(num_patches(clip.visual))
        self.teacher = copy.deepcopy(clip.visual).eval().requires_grad_(False)
        self.prompt = prompt

    @property
    def student(self) -> nn.Module:
        return self.clip.visual

    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return vision_features(self.student, pixels)

    @torch.no_grad()
    def teacher_features(self, pixels: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()
        return self.teacher(pixels)

    def label_embeddings(self, labels: Sequence[str]) -> torch.Tensor:
        """Normalised label embeddings through the learned prompt, or the fixed template
        (differentiable through the prompt context)."""
        return embed_label_texts(self.clip, self.tokenizer, self.template, self.prompt, labels)

    def scores(self, pixels: torch.Tensor, label_emb: torch.Tensor, label_norm: bool = True) -> torch.Tensor:
        g, p = self.image_features(pixels)
        return two_stream_scores(g.float(), p.float(), label_emb, self.top_k, label_norm, self.global_only)


def set_trainable_blocks(visual: nn.Module, n_blocks: int) -> list[str]:
    """Freeze the image tower except its last ``n_blocks`` transformer blocks, ln_post and the
    projection (the official stage-1 recipe with n_blocks=2); returns the trainable names."""
    visual.requires_grad_(False)
    blocks = visual.transformer.resblocks
    if not 0 <= n_blocks <= len(blocks):
        raise ValueError(f"can fine-tune 0..{len(blocks)} blocks, asked for {n_blocks}")
    for block in list(blocks)[len(blocks) - n_blocks:]:
        block.requires_grad_(True)
    visual.ln_post.requires_grad_(True)
    if isinstance(visual.proj, nn.Parameter):
        visual.proj.requires_grad_(True)
    return [n for n, p in visual.named_parameters() if p.requires_grad]


def layer_decay_groups(visual: nn.Module, lr: float, weight_decay: float, decay: float) -> list[dict]:
    """AdamW parameter groups of the trainable image tower with layer-wise LR decay: the head
    (ln_post, proj) gets ``lr``, block i from the top ``lr * decay**i``; no weight decay on
    1-D parameters (norms, biases) as the official optimizer builder does."""
    n_layers = len(visual.transformer.resblocks)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in visual.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("transformer.resblocks."):
            layer = int(name.split(".")[2]) + 1
        elif name.startswith(("ln_post", "proj")):
            layer = n_layers + 1
        else:
            layer = 0
        scale = decay ** (n_layers + 1 - layer)
        no_wd = param.ndim <= 1 or name.endswith(".bias")
        key = (layer, no_wd)
        group = groups.setdefault(key, {"params": [], "lr_scale": scale, "lr": lr * scale,
                                        "weight_decay": 0.0 if no_wd else weight_decay})
        group["params"].append(param)
    return list(groups.values())


def cosine_lr(step: int, total: int, warmup: int, base: float, minimum: float = 1e-6) -> float:
    """Linear warm-up then half-cosine from ``base`` down to ``minimum`` (step-based)."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + (base - minimum) * 0.5 * (1 + math.cos(math.pi * progress))
