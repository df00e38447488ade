"""CoOp-style prompt tuning of the CLIP text encoder (MKT stage 2).

A prompt is ``[SOT] prefix-context... label tokens... suffix-context... [EOT]``: the label's own
token embeddings sit between learnable context vectors, and the frozen CLIP text encoder turns
the whole sequence into the label embedding. Initialised from a template, the context starts
as the template's own token embeddings ("There is a" | "in the scene"), so before training the
encoder reproduces the template exactly; with ``init="random"`` it is ``n_ctx`` random vectors
before the label (CoOp's unified context). The learned context applies to any label text.

The official MKT code instead trains the whole token-embedding table (its template's tokens
and every label word); that variant lives in the trainer (``prompt_mode="table"``) and needs no
module here: its bundle simply carries the trained table in the CLIP weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mkt.tagmodel import MKT_TEMPLATE
from mkt.text import run_tower, text_tower

PLACEHOLDER = "X"


def _template_parts(template: str) -> tuple[str, str]:
    if template.count("{label}") != 1:
        raise ValueError(f"a prompt template needs exactly one {{label}}, got {template!r}")
    prefix, suffix = template.split("{label}")
    return prefix.strip(), suffix.strip()


class PromptEncoder(nn.Module):
    """Learnable prompt context around label tokens, through a frozen CLIP text encoder."""

    def __init__(self, clip: nn.Module, tokenizer: Callable[[Sequence[str]], torch.Tensor],
                 template: str = MKT_TEMPLATE, init: str = "template", n_ctx: int = 4,
                 context: torch.Tensor | None = None, context_suffix: torch.Tensor | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.template = template
        tower = text_tower(clip)
        width = tower.token_embedding.weight.shape[1]
        if context is None:
            if init == "template":
                prefix, suffix = _template_parts(template)
                context, context_suffix = self._token_vectors(prefix), self._token_vectors(suffix)
            elif init == "random":
                if n_ctx < 1:
                    raise ValueError("n_ctx must be at least 1 with random initialisation")
                context = torch.randn(n_ctx, width) * 0.02
                context_suffix = torch.zeros(0, width)
            else:
                raise ValueError(f"init must be 'template' or 'random', got {init!r}")
        if context_suffix is None:
            context_suffix = torch.zeros(0, width)
        device = tower.token_embedding.weight.device
        self.context = nn.Parameter(context.detach().clone().float().to(device))
        self.context_suffix = nn.Parameter(context_suffix.detach().clone().float().to(device))

    def _token_vectors(self, words: str) -> torch.Tensor:
        """Token embeddings of ``words`` (without start/end tokens)."""
        if not words:
            width = text_tower(self.clip).token_embedding.weight.shape[1]
            return torch.zeros(0, width)
        tokens = self.tokenizer([words])[0]
        eot = int(tokens.argmax())
        with torch.no_grad():
            emb = text_tower(self.clip).token_embedding(tokens[1:eot].to(self.device))
        return emb.detach().cpu()

    @property
    def device(self) -> torch.device:
        return text_tower(self.clip).token_embedding.weight.device

    @property
    def n_prefix(self) -> int:
        return int(self.context.shape[0])

    @property
    def n_suffix(self) -> int:
        return int(self.context_suffix.shape[0])

    def forward(self, labels: Sequence[str]) -> torch.Tensor:
        """Label embeddings [L, D] (not normalised), differentiable w.r.t. the context only."""
        tower = text_tower(self.clip)
        texts = [" ".join([PLACEHOLDER] * self.n_prefix + [label] + [PLACEHOLDER] * self.n_suffix)
                 for label in labels]
        tokens = self.tokenizer(texts).to(self.device)
        cast_dtype = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(tokens).to(cast_dtype)
        rows = torch.arange(len(labels), device=self.device)
        if self.n_prefix:
            x[:, 1:1 + self.n_prefix] = self.context.to(cast_dtype)
        if self.n_suffix:
            eot = tokens.argmax(dim=-1)  # the suffix sits right before the end token
            for j in range(self.n_suffix):
                x[rows, eot - self.n_suffix + j] = self.context_suffix[j].to(cast_dtype)
        return run_tower(tower, x, tokens)  # pooled at the end token, on the real token length

    def bundle_prompt(self) -> dict[str, Any]:
        return {"template": self.template, "context": self.context.detach().cpu(),
                "context_suffix": self.context_suffix.detach().cpu()}


def prompt_encoder_from_bundle(clip: nn.Module, bundle: Any) -> PromptEncoder:
    import open_clip

    prompt = bundle.prompt
    return PromptEncoder(clip, open_clip.get_tokenizer(bundle.arch), template=prompt.get("template", MKT_TEMPLATE),
                         context=prompt["context"], context_suffix=prompt.get("context_suffix"))
