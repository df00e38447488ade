"""A video is one item of the collection made of its sampled frames (:mod:`core.media.video`).

Every frame is embedded (in batches of the model's batch size, beside the batch's stills); the
video's tags are the best over its frames (each label's highest frame score), its stored
embedding, the one the vector index holds, is the normalised mean of its frames, and each
frame's embedding is kept (``video_frames``) so that search scores the video by its best frame
and names that frame's time (:mod:`indexer.search.shots`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mkt.runner import ImageRunner
from mkt.tagmodel import ImageEmbeddings


@dataclass
class Frames:
    """One video's frames: their times (seconds) and global embeddings [F, D] as stored."""

    times: list[float]
    vectors: torch.Tensor


def fold_videos(runner: ImageRunner, items: list[dict[str, Any]], emb: ImageEmbeddings, label_emb: torch.Tensor | None,
                batch_size: int, as_stored) -> tuple[ImageEmbeddings, torch.Tensor | None, dict[int, Frames]]:
    """The batch's embeddings and scores with each video folded into one item: (embeddings,
    scores [B, L] or None without labels, frames by position in the batch). ``emb`` holds one
    (the first) frame per item; the videos' other frames are embedded here."""
    model = runner.model
    scores = model.score(emb, label_emb).float() if label_emb is not None else None
    videos = [n for n, it in enumerate(items) if it.get("times")]
    if not videos:
        return emb, scores, {}
    extra = [items[n]["more"] for n in videos if items[n].get("more") is not None]
    more = _embed_all(runner, torch.cat(extra), batch_size) if extra else None
    global_, patches = emb.global_.clone(), emb.patches
    frames: dict[int, Frames] = {}
    at = 0
    for n in videos:
        count = len(items[n]["times"]) - 1
        parts = ImageEmbeddings(
            torch.cat([emb.global_[n:n + 1], more.global_[at:at + count]]) if count else emb.global_[n:n + 1],
            None if emb.patches is None else
            (torch.cat([emb.patches[n:n + 1], more.patches[at:at + count]]) if count else emb.patches[n:n + 1]))
        at += count
        parts = as_stored(parts)
        mean = torch.nn.functional.normalize(parts.global_.float().mean(dim=0), dim=-1)
        global_[n] = mean.to(global_.dtype)
        frames[n] = Frames(list(items[n]["times"]), parts.global_)
        if scores is not None:
            scores[n] = model.score(parts, label_emb).float().max(dim=0).values
        if patches is not None:  # the local stream keeps the frame nearest the mean
            nearest = int((parts.global_.float() @ mean).argmax())
            patches = patches.clone() if patches is emb.patches else patches
            patches[n] = parts.patches[nearest].to(patches.dtype)
    return ImageEmbeddings(global_, patches), scores, frames


def _embed_all(runner: ImageRunner, pixels: torch.Tensor, batch_size: int) -> ImageEmbeddings:
    device = runner.device
    parts = [runner.embed(pixels[i:i + batch_size].to(device)) for i in range(0, len(pixels), batch_size)]
    patches = None if parts[0].patches is None else torch.cat([p.patches for p in parts])
    return ImageEmbeddings(torch.cat([p.global_ for p in parts]), patches)
