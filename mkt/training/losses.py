"""Losses of MKT training (METHOD.md): the BiAM ranking loss and L1 distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Pairwise ranking loss over positive/negative label pairs of each image.

    ``scores`` [N, C]; ``labels`` [N, C] in {1, -1, 0} (0 = ignored). For each image, over every
    pair of a positive p and a negative n: max(0, margin + s_n - s_p); the sum is divided by
    the number of pairs whose hinge is positive (+1e-8), then averaged over images. An image
    without a positive or without a negative contributes 0.
    """
    if scores.shape != labels.shape or scores.dim() != 2:
        raise ValueError(f"scores and labels must both be [N, C]; got {tuple(scores.shape)} and {tuple(labels.shape)}")
    pos = (labels == 1).to(scores.dtype)
    neg = (labels == -1).to(scores.dtype)
    # hinge[i, p, n] = margin + s[i, n] - s[i, p], kept only where p is positive and n negative
    hinge = F.relu(margin + scores.unsqueeze(1) - scores.unsqueeze(2))
    mask = pos.unsqueeze(2) * neg.unsqueeze(1)
    hinge = hinge * mask
    violating = (hinge > 0).to(scores.dtype).sum(dim=(1, 2))
    per_image = hinge.sum(dim=(1, 2)) / (violating + 1e-8)
    return per_image.mean()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L1 between the student's global embedding and the frozen CLIP image embedding (mean over
    elements, as ``torch.nn.L1Loss`` computes it)."""
    return F.l1_loss(student, teacher.detach())
