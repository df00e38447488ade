"""Results as shots, not files: a video scored by its best frame, a stack shown once.

- A video's stored embedding (the index's) is the mean of its sampled frames
  (:mod:`tagger.video_frames`); among the candidates, each video is scored again by its best
  frame and the hit names that frame's time (``frame_s``). The model's score of an item is
  ``(g + w * l) / (1 + w)`` (global cosine ``g``, local stream ``l`` with weight ``w``; ``w = 0``
  for plain CLIP); the frame's global cosine replaces the mean's: ``score + (g_best - g) / (1 + w)``.
- The files of one shot (a RAW and its JPEG, a Live Photo's still and video: :mod:`core.media.stacks`)
  come back once, as the stack's face (the still) with the best score of any of its files, and
  the other files listed on the hit (``stack``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from sqlalchemy import func, select

from core.db import Database
from core.media.stacks import stack_groups
from core.schema import TAGGED, Image, VideoFrame
from indexer import store
from mkt.tagmodel import TagModel


@dataclass
class Shot:
    """What a hit adds as a shot: its best frame's time (videos) and the other files of its stack."""

    frame_s: float | None = None
    stack: list[str] = field(default_factory=list)


def best_frames(db: Database, model: TagModel, version_id: int, query: torch.Tensor,
                ranked: list[tuple[int, float]], by_model: bool) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """``ranked`` with each video scored by its best frame (re-sorted), and the video ids' frame times."""
    if not ranked:
        return ranked, {}
    ids = [i for i, _ in ranked]
    with db.session() as s:
        rows = s.execute(select(VideoFrame.image_id, VideoFrame.time_s, VideoFrame.vector)
                         .where(VideoFrame.image_id.in_(ids), VideoFrame.model_version_id == version_id)
                         .order_by(VideoFrame.image_id, VideoFrame.idx)).all()
    if not rows:
        return ranked, {}
    frames: dict[int, list[tuple[float, bytes]]] = defaultdict(list)
    for image_id, t, vector in rows:
        frames[image_id].append((t, vector))
    found, vectors = store.get(db, version_id, list(frames), model.embed_dim)
    item_vec = {int(i): v for i, v in zip(found, vectors)}
    q = query.float().reshape(-1).cpu().numpy()
    w = model.local_weight if by_model and model.local_top_k > 0 else 0.0
    times: dict[int, float] = {}
    scores = dict(ranked)
    for image_id, parts in frames.items():
        if image_id not in item_vec:
            continue
        cosines = np.stack([np.frombuffer(v, np.float16).astype(np.float32) for _, v in parts]) @ q
        best = int(np.argmax(cosines))
        times[image_id] = parts[best][0]
        g_item = float(item_vec[image_id].astype(np.float32) @ q)
        scores[image_id] = scores[image_id] + (float(cosines[best]) - g_item) / (1 + w)
    return sorted(scores.items(), key=lambda kv: -kv[1]), times


def stacks(db: Database, ranked: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], dict[int, list[str]]]:
    """``ranked`` with every stack once, as its face, at its best member's score and rank; and
    the faces' other files."""
    if not ranked:
        return ranked, {}
    ids = [i for i, _ in ranked]
    with db.session() as s:  # the stack keys of those of ids whose stack holds other tagged files
        keys = select(Image.stack_key).where(Image.id.in_(ids), Image.stack_key.is_not(None)).scalar_subquery()
        shared = (select(Image.stack_key).where(Image.stack_key.in_(keys), Image.status == TAGGED)
                  .group_by(Image.stack_key).having(func.count() > 1).scalar_subquery())
        key_of = dict(s.execute(select(Image.id, Image.stack_key).where(Image.id.in_(ids),
                                                                        Image.stack_key.in_(shared))).all())
        members = stack_groups(s, set(key_of.values()), Image.status == TAGGED)
    if not members:
        return ranked, {}
    out, seen, others = [], set(), {}
    for image_id, score in ranked:
        key = key_of.get(image_id)
        if key not in members:
            out.append((image_id, score))
            continue
        if key in seen:
            continue
        seen.add(key)
        group = members[key]
        face = group[0][0]
        out.append((face, score))
        others[face] = [path for i, path, _ in group if i != face]
    return out, others


def as_shots(db: Database, model: TagModel, version_id: int, query: torch.Tensor, ranked: list[tuple[int, float]],
             by_model: bool) -> tuple[list[tuple[int, float]], dict[int, Shot]]:
    """:func:`best_frames` then :func:`stacks`: the ranking as shots, and what each hit adds."""
    ranked, times = best_frames(db, model, version_id, query, ranked, by_model)
    ranked, others = stacks(db, ranked)
    return ranked, {i: Shot(times.get(i), others.get(i, [])) for i, _ in ranked if i in times or i in others}
