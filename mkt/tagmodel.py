"""The tag model: what the tagger and the search need from any CLIP-like model.

Every tag model, whatever its origin (a pretrained open_clip model, the bundled synthetic
model, an MKT bundle), exposes the same four things:

- ``preprocess``: PIL image -> tensor, the model's own eval transform;
- ``encode_images(pixels)`` -> L2-normalised global embeddings ``[B, D]`` and, for ViTs,
  patch embeddings ``[B, P, D]`` through the same projection;
- ``encode_labels(texts)`` -> L2-normalised label embeddings ``[L, D]`` through the model's
  prompt (a template, or learned prompt context after MKT stage 2);
- ``score(images, labels)`` -> ``[B, L]``, a label-independent score (see :meth:`TagModel.score`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mkt.calibration import Constants
from mkt.text import TEXT_RUNNER, encode_text

DEFAULT_TEMPLATE = "a photo of a {label}."
MKT_TEMPLATE = "There is a {label} in the scene"  # the paper's stage-1 template


def vision_features(visual: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(global [B, D], patches [B, P, D]) of an open_clip VisionTransformer, both through the
    image projection, not normalised (as the official MKT code's ``encode_img``)."""
    visual.output_tokens = True
    try:
        pooled, tokens = visual(pixels)
    finally:
        visual.output_tokens = False
    if visual.proj is not None and tokens.shape[-1] != pooled.shape[-1]:
        tokens = tokens @ visual.proj  # patches go through the same projection as the CLS token
    return pooled, tokens


def local_scores(patches: torch.Tensor, label_emb: torch.Tensor, top_k: int) -> torch.Tensor:
    """MKT's local stream [B, C]: per label, the mean of its ``top_k`` best patch scores."""
    local = torch.einsum("bpd,cd->bcp", patches, label_emb)
    return local.topk(min(top_k, local.shape[-1]), dim=-1).values.mean(dim=-1)


def clip_embed_dim(clip: nn.Module) -> int:
    """The width of the joint embedding space (the image projection's output)."""
    proj = getattr(clip.visual, "proj", None)
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[1])
    return int(clip.visual.output_dim)


def embed_label_texts(clip: nn.Module, tokenizer: Callable[[Sequence[str]], torch.Tensor], template: str,
                      prompt_encoder: Callable[[list[str]], torch.Tensor] | None, texts: Sequence[str],
                      batch_size: int | None = None) -> torch.Tensor:
    """L2-normalised label embeddings ``[L, D]``: through the learned prompt (``prompt_encoder``,
    MKT stage 2) or else the fixed ``template`` and CLIP's text tower.

    The one label encoder of inference (:meth:`TagModel.encode_labels`, batched) and training
    (:meth:`mkt.training.model.MKT.label_embeddings`, one batch): it does not switch gradients off, so
    in training it stays differentiable through the prompt context.
    """
    if isinstance(texts, str):
        raise TypeError("label encoding takes a sequence of label texts, not one string")
    texts = list(texts)
    device = next(clip.parameters()).device
    if not texts:
        return torch.empty(0, clip_embed_dim(clip), device=device)
    step = batch_size or len(texts)
    # In batches of similar length: the tower runs each batch on its longest text's tokens
    # (mkt.text), so sorted batches do ~1.6x less work on the default vocabulary; a text's
    # embedding does not depend on its batch mates.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if len(texts) > step else list(range(len(texts)))
    out = []
    for start in range(0, len(texts), step):
        chunk = [texts[i] for i in order[start:start + step]]
        if prompt_encoder is not None:
            emb = prompt_encoder(chunk)
        else:
            emb = encode_text(clip, tokenizer([template.format(label=t) for t in chunk]).to(device))
        out.append(F.normalize(emb.float(), dim=-1))
    if len(out) == 1:
        return out[0]
    restore = torch.empty(len(order), dtype=torch.long)
    restore[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(out)[restore.to(device)]


@dataclass
class ImageEmbeddings:
    """Normalised image features: ``global_`` [B, D]; ``patches`` [B, P, D] or None (non-ViT towers)."""

    global_: torch.Tensor
    patches: torch.Tensor | None = None


class TagModel(nn.Module):
    """A CLIP model plus its prompt and scoring head.

    ``local_top_k`` > 0 turns on MKT's two-stream scoring (global + mean of the top-k patch
    scores); 0 means plain CLIP scoring with the global embedding only. ``local_weight`` is the
    weight of the local stream against the global one in :meth:`score` (fitted at training
    time, see :func:`mkt.training.train.stream_balance`).
    """

    def __init__(
        self,
        clip: nn.Module,
        tokenizer: Callable[[Sequence[str]], torch.Tensor],
        preprocess: Callable[[Any], torch.Tensor],
        *,
        version: str,
        spec: str,
        template: str = DEFAULT_TEMPLATE,
        prompt_encoder: nn.Module | None = None,
        local_top_k: int = 0,
        local_weight: float = 1.0,
        labels: Sequence[str] = (),
        label_families: dict[str, list[str]] | None = None,
        kind: str = "clip",
        relevance: Constants | None = None,
        suggested_queries: Sequence[str] = (),
        tag_calibration: dict | None = None,
    ) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.version = version
        self.spec = spec
        self.template = template
        self.prompt_encoder = prompt_encoder
        self.local_top_k = local_top_k
        self.local_weight = float(local_weight)
        self.labels = list(labels)
        self.label_families = label_families
        self.kind = kind  # "clip" (zero-shot) or "mkt" (two-stream head, trained)
        self.relevance = relevance or Constants()  # how search calls a result a match (mkt.calibration)
        self.suggested_queries = list(suggested_queries)  # texts it answers well (a demo's "try: ...")
        # how its tags are decided: a bundle's meta["tags"] (mkt.tag_calibration), None: collection rules
        self.tag_calibration = tag_calibration
        self.eval()

    # -- properties -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.clip.parameters()).device

    @property
    def embed_dim(self) -> int:
        return clip_embed_dim(self.clip)

    @property
    def has_patches(self) -> bool:
        return hasattr(self.clip.visual, "output_tokens") and hasattr(self.clip.visual, "proj")

    def describe(self) -> str:
        """What kind of model answers, in a few words (the search page says it)."""
        if self.kind != "mkt":
            return "zero-shot CLIP"
        streams = "two streams" if self.local_top_k > 0 else "global stream"
        return f"MKT ({streams}, {'prompt-tuned' if self.prompt_encoder is not None else 'fixed'} label prompt)"

    def label_training(self, text: str) -> str | None:
        """Whether a label text was trained on: ``"seen"``, ``"held out"`` (in the model's
        vocabulary but held out of its training), ``"new"`` (never in its training data), or None
        for a model that was not trained on labels (zero-shot CLIP)."""
        families = self.label_families or {}
        if "seen" not in families:
            return None
        key = " ".join(text.lower().split())
        if key in {" ".join(s.lower().split()) for s in families["seen"]}:
            return "seen"
        if key in {" ".join(s.lower().split()) for s in families.get("unseen", ())}:
            return "held out"
        return "new"

    # -- image side -------------------------------------------------------------------------
    def encode_images(self, pixels: torch.Tensor, with_patches: bool | None = None) -> ImageEmbeddings:
        """Global (and patch) embeddings of a preprocessed batch, L2-normalised."""
        visual = self.clip.visual
        want_patches = self.has_patches if with_patches is None else (with_patches and self.has_patches)
        exported = self.__dict__.get("image_runtime")  # mkt.runtime: ONNX Runtime or OpenVINO
        if exported is not None and exported.can_embed(want_patches):
            return exported.embed(pixels, want_patches)
        if not want_patches:
            return ImageEmbeddings(F.normalize(visual(pixels).float(), dim=-1))
        pooled, tokens = vision_features(visual, pixels)
        return ImageEmbeddings(F.normalize(pooled.float(), dim=-1), F.normalize(tokens.float(), dim=-1))

    # -- label side -------------------------------------------------------------------------
    def encode_labels(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Label embeddings through the prompt; works for any text, seen in training or not."""
        runner = self.__dict__.get("text_runtime")  # mkt.runtime.text: the transformer on ONNX Runtime
        token = TEXT_RUNNER.set(runner) if runner is not None else None
        try:
            return embed_label_texts(self.clip, self.tokenizer, self.template, self.prompt_encoder, texts, batch_size)
        finally:
            if token is not None:
                TEXT_RUNNER.reset(token)

    # -- scoring ----------------------------------------------------------------------------
    def score(self, images: ImageEmbeddings, label_emb: torch.Tensor) -> torch.Tensor:
        """Label-independent scores ``[B, L]`` in [-1, 1].

        Plain CLIP: cosine of global embedding and label embedding. Two-stream (MKT): the
        weighted mean of the global cosine and the mean of the ``local_top_k`` best patch
        cosines, ``(global + w * local) / (1 + w)`` with ``w = local_weight``. Training fits ``w``
        so that both streams spread equally over the training images (the trained patch
        cosines span a far narrower range than the global one; a plain average lets the global
        stream decide alone). ``w`` is a constant of the model, not of the labels scored.
        Unlike the paper's evaluation score, no normalisation across the label axis is
        applied, so an image's score for a label does not depend on which other labels are
        scored with it: this is the score stored in SQL and used for thresholds.
        """
        global_scores = images.global_ @ label_emb.T
        if self.local_top_k <= 0 or images.patches is None:
            return global_scores
        w = self.local_weight
        return (global_scores + w * local_scores(images.patches, label_emb, self.local_top_k)) / (1 + w)
