"""CLIP's text tower on the real token length: the same embeddings for a fraction of the work.

CLIP pads every text to a 77-token context, and its text transformer is causal: a token
attends only to the tokens before it, and the embedding is read at the end-of-text token (the
highest token id, hence ``argmax`` pooling). Positions after the longest text's end token in a
batch therefore change nothing, and running the transformer on the first ``n`` positions
(``n`` = that end position + 1) gives the same embeddings (tests/test_text_tower.py: within
1e-5) for about 77/n less work: label texts are 5-12 tokens. Towers for which this does not
hold (no causal mask, a class token, pooling other than at the end token) run the full context.
"""

from __future__ import annotations

from contextvars import ContextVar

import torch
from torch import nn

# a text runtime (mkt.runtime.text) that runs the transformer instead, set by TagModel.encode_labels
TEXT_RUNNER: ContextVar = ContextVar("tagscope_text_runner", default=None)


def text_tower(clip: nn.Module) -> nn.Module:
    """The module holding token_embedding ... text_projection (CLIP or CustomTextCLIP)."""
    tower = getattr(clip, "text", None)
    return tower if tower is not None and hasattr(tower, "token_embedding") else clip


def can_trim(tower: nn.Module) -> bool:
    """True when ``tower`` is causal, pools at the end token and has no class token."""
    return (getattr(tower, "attn_mask", None) is not None and getattr(tower, "text_pool_type", "argmax") == "argmax"
            and getattr(tower, "cls_emb", None) is None
            and all(hasattr(tower, a) for a in ("positional_embedding", "transformer", "ln_final")))


def used_length(tokens: torch.Tensor) -> int:
    """Positions a batch of CLIP token ids needs: up to its last end-of-text token."""
    return int(tokens.argmax(dim=-1).max().item()) + 1


def run_tower(tower: nn.Module, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The text transformer on token embeddings ``x`` [B, L, W] (prompt context already in
    place) for token ids ``tokens`` [B, L]: projected features at each end token, not normalised,
    computed on the real token length when the tower allows it."""
    n = used_length(tokens) if can_trim(tower) else tokens.shape[1]
    runner = TEXT_RUNNER.get()
    if runner is not None and can_trim(tower) and runner.serves(tower):
        return runner(x[:, :n], tokens[:, :n].argmax(dim=-1))
    cast_dtype = tower.transformer.get_cast_dtype()
    x = x[:, :n] + tower.positional_embedding[:n].to(cast_dtype)
    mask = getattr(tower, "attn_mask", None)
    x = tower.transformer(x, attn_mask=None if mask is None else mask[:n, :n])
    x = tower.ln_final(x)
    x = x[torch.arange(len(tokens), device=x.device), tokens[:, :n].argmax(dim=-1)]
    proj = tower.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return x


def encode_text(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``clip.encode_text(tokens)`` (not normalised), on the real token length where it is exact."""
    tower = text_tower(clip)
    if not can_trim(tower):
        return clip.encode_text(tokens)
    return run_tower(tower, tower.token_embedding(tokens).to(tower.transformer.get_cast_dtype()), tokens)
