"""Model spec strings (see :mod:`mkt.factory`); parsing them imports nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass

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
