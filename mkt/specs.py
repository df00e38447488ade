"""Model spec strings (see :mod:`mkt.factory`); parsing them imports nothing heavy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mkt.errors import TagscopeError

DEFAULT_MODEL_SPEC = "open_clip:ViT-B-32:laion2b_s34b_b79k"


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "open_clip" | "mkt" | "synthetic"
    arch: str = ""
    pretrained: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "synthetic":
            return "synthetic"
        if self.kind == "mkt":
            return f"mkt:{self.path}"
        return f"open_clip:{self.arch}" + (f":{self.pretrained}" if self.pretrained else "")


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string; raises :class:`TagscopeError` naming the accepted forms."""
    spec = (spec or "").strip()
    if spec == "synthetic":
        return ModelSpec("synthetic")
    kind, _, rest = spec.partition(":")
    if kind == "mkt" and rest:
        return ModelSpec("mkt", path=rest)
    if kind == "open_clip" and rest:
        arch, _, pretrained = rest.partition(":")
        return ModelSpec("open_clip", arch=arch, pretrained=pretrained)
    raise TagscopeError(
        f"unknown model spec {spec!r}: use open_clip:ARCH:PRETRAINED (e.g. {DEFAULT_MODEL_SPEC}), "
        "open_clip:ARCH, mkt:PATH or synthetic")


def offline_error(spec: ModelSpec, why: str) -> TagscopeError:
    return TagscopeError(
        f"cannot load weights {spec.arch}:{spec.pretrained} ({why}): download them once on a machine with internet "
        f"and HF_HUB_OFFLINE unset, or pass a local file: --model open_clip:{spec.arch}:/path/to/weights.safetensors")


def _weight_caches() -> list[Path]:
    env = os.environ
    hub = env.get("HF_HUB_CACHE") or (Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME") else None)
    cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [Path(hub) if hub else cache_home / "huggingface" / "hub", cache_home / "clip"]


def check_offline_weights(spec: ModelSpec) -> None:
    """With HF_HUB_OFFLINE set and no model weights cached at all, fail at once, before the
    seconds it takes to import torch and open_clip. Anything cached: the real loader decides."""
    if spec.kind != "open_clip" or not spec.pretrained or Path(spec.pretrained).expanduser().exists():
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("", "0", "false", "no"):
        return
    for cache in _weight_caches():
        if cache.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in cache.rglob("*") if not p.is_dir()):
            return
    raise offline_error(spec, "HF_HUB_OFFLINE is set")


WEIGHT_SUFFIXES = {".bin", ".safetensors", ".pt", ".pth"}
