"""Checkpoint bundles: one self-describing file per tag model.

A bundle is a single ``torch.save`` file holding a plain dict (loadable with
``weights_only=True``)::

    {
      "format": "tagscope.bundle/1",
      "kind": "clip" | "mkt",          # zero-shot CLIP weights, or an MKT-trained model
      "arch": "tagscope-tiny",         # open_clip architecture name
      "model_config": {...},           # the open_clip config dict (embed_dim, vision_cfg, text_cfg)
      "state_dict": {name: tensor},    # open_clip CLIP weights (MKT: the fine-tuned image side too)
      "sparse_state": {name: {"ids", "rows", "shape"}},  # mostly-zero matrices, rows kept by id
      "prompt": {"template": "a photo of a {label}.", "context": tensor | None, ...},
      "head": {...},                   # scoring options (MKT: top-k of the local stream)
      "labels": ["red circle", ...],   # the label vocabulary the model was made for
      "label_families": {"colour": [...], ...} | None,
      "meta": {...},                   # how it was made: command, seed, metrics
      "version": "3f2a9c0d1b7e",       # content hash of everything above
    }

The version id identifies the scores a model produces: tags and index entries in
SQL are keyed by it, so a changed model means re-tagging, never mixed scores.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.atomic import atomic_write
from core.errors import TagscopeError

BUNDLE_FORMAT = "tagscope.bundle/1"
BUNDLE_KINDS = ("clip", "mkt")


class BundleError(TagscopeError):
    """A bundle file is missing, unreadable or not a Tagscope bundle."""


@dataclass
class Bundle:
    kind: str
    arch: str
    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    prompt: dict[str, Any]
    labels: list[str]
    head: dict[str, Any] = field(default_factory=dict)
    label_families: dict[str, list[str]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def compute_version(self) -> str:
        """A short content hash over weights, prompt, head and config."""
        h = hashlib.sha256()
        h.update(self.kind.encode())
        h.update(self.arch.encode())
        h.update(json.dumps(self.model_config, sort_keys=True).encode())
        h.update(json.dumps(self.head, sort_keys=True).encode())
        for name in sorted(self.state_dict):
            h.update(name.encode())
            h.update(_tensor_bytes(self.state_dict[name]))
        h.update(json.dumps({k: v for k, v in self.prompt.items() if not isinstance(v, torch.Tensor)},
                            sort_keys=True).encode())
        for key in sorted(k for k, v in self.prompt.items() if isinstance(v, torch.Tensor)):
            h.update(key.encode())
            h.update(_tensor_bytes(self.prompt[key]))
        return h.hexdigest()[:12]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    t = t.detach().cpu().contiguous()
    buf.write(str(t.dtype).encode())
    buf.write(str(tuple(t.shape)).encode())
    buf.write(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return buf.getvalue()


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> str:
    """Write ``bundle`` atomically (temp file, then rename); returns its version id."""
    if bundle.kind not in BUNDLE_KINDS:
        raise BundleError(f"bundle kind must be one of {BUNDLE_KINDS}, got {bundle.kind!r}")
    bundle.version = bundle.compute_version()
    payload = {
        "format": BUNDLE_FORMAT,
        "kind": bundle.kind,
        "arch": bundle.arch,
        "model_config": bundle.model_config,
        **_pack_state(bundle.state_dict),
        "prompt": {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v)
                   for k, v in bundle.prompt.items()},
        "head": bundle.head,
        "labels": list(bundle.labels),
        "label_families": bundle.label_families,
        "meta": bundle.meta,
        "version": bundle.version,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return bundle.version


def _pack_state(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Matrices whose rows are mostly zero (a token table where only the words a model was
    trained on are kept) are stored as (row ids, rows): the bundle stays a few MB."""
    dense, sparse = {}, {}
    for name, t in state.items():
        t = t.detach().cpu()
        if t.ndim == 2 and t.shape[0] >= 1024:
            nonzero = t.abs().sum(dim=1) != 0
            if int(nonzero.sum()) < t.shape[0] // 2:
                ids = nonzero.nonzero().flatten().to(torch.int32)
                sparse[name] = {"ids": ids, "rows": t[nonzero].clone(), "shape": list(t.shape)}
                continue
        dense[name] = t
    return {"state_dict": dense, "sparse_state": sparse}


def _unpack_state(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = dict(payload["state_dict"])
    for name, packed in (payload.get("sparse_state") or {}).items():
        full = torch.zeros(packed["shape"], dtype=packed["rows"].dtype)
        full[packed["ids"].long()] = packed["rows"]
        state[name] = full
    return state


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read a bundle written by :func:`save_bundle`; raises :class:`BundleError` with the fix."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle file at {path}: train one with `tagscope train` or check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise BundleError(f"{path} is not a readable Tagscope bundle ({type(exc).__name__}); "
                          "re-create it with `tagscope train`") from exc
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a Tagscope bundle (expected format {BUNDLE_FORMAT!r})")
    return Bundle(
        kind=payload["kind"],
        arch=payload["arch"],
        model_config=payload["model_config"],
        state_dict=_unpack_state(payload),
        prompt=payload["prompt"],
        labels=list(payload["labels"]),
        head=payload.get("head") or {},
        label_families=payload.get("label_families"),
        meta=payload.get("meta") or {},
        version=payload["version"],
    )
