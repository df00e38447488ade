"""Running a tag model's image tower fast: the float half of the transform on the device,
autocast (bf16 on CUDA by default), optional ``torch.compile``, under ``inference_mode``.

The tagging pipeline and the GPU benchmark's model-only figure use this same object, so the
two figures differ by the pipeline's own costs and nothing else.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

from mkt.pixels import InputGeometry
from mkt.tagmodel import ImageEmbeddings, TagModel

log = logging.getLogger(__name__)


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``amp`` (auto, bf16, fp16, off) on ``device``; None: fp32.
    Autocast on the CPU is slower than fp32 for these models, so auto keeps fp32 there."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


class ImageRunner:
    """``embed(pixels)``: uint8 ``[B, 3, S, S]`` (or already normalised float) on the model's
    device -> L2-normalised :class:`ImageEmbeddings` (float32), with patches when the model
    scores a local stream."""

    def __init__(self, model: TagModel, amp: str = "auto", compile: bool = False) -> None:
        self.model = model
        self.device = model.device
        self.geometry = InputGeometry.of(model.preprocess)
        self.dtype = amp_dtype(self.device, amp)
        self.with_patches = model.local_top_k > 0
        self._encode = model.encode_images
        self.compiled = False
        if compile and self.device.type == "cuda":
            self._encode = torch.compile(model.encode_images, dynamic=False)
            self.compiled = True

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        exported = self.model.__dict__.get("image_runtime")  # mkt.runtime
        if exported is not None:
            return f"{self.device}, {exported.describe()}"
        precision = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.dtype]
        return f"{self.device}, {precision}{', torch.compile' if self.compiled else ''}"

    def embed(self, pixels: torch.Tensor) -> ImageEmbeddings:
        if pixels.dtype == torch.uint8:
            if self.geometry is None:
                raise ValueError("uint8 pixels need a model whose transform has a known geometry")
            pixels = self.geometry.normalize(pixels)
        with torch.inference_mode(), self.autocast():
            if not self.compiled:
                return self.model.encode_images(pixels, with_patches=self.with_patches)
            try:
                return self._encode(pixels, with_patches=self.with_patches)
            except Exception as exc:  # noqa: BLE001 - compilation is an optimisation, never a failure
                log.warning("torch.compile failed (%s: %s); running eager", type(exc).__name__, exc)
                self.compiled = False
                self._encode = self.model.encode_images
                return self.model.encode_images(pixels, with_patches=self.with_patches)
