"""A model's input geometry, split so the pixels cross processes as uint8.

A CLIP eval transform is ``Resize(shortest side) -> CenterCrop -> to RGB -> ToTensor ->
Normalize``. :class:`InputGeometry` keeps the PIL half (resize and crop, the model's own
transform objects) for the decode workers, which hand over ``uint8 [3, S, S]`` tensors (4x less
to copy between processes than float32, and what pinned memory and a non-blocking copy move to
a GPU); the float half (``/255``, mean, std) runs on the model's device, as the same operations
as ``ToTensor`` and ``Normalize``, so the result equals ``preprocess(image)``.

It also does the resize and crop of images decoded on the GPU (:func:`resize_crop`).
Transforms of any other shape give no geometry (:meth:`InputGeometry.of` returns None): the
decode workers then run the model's ``preprocess`` whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# The names open_clip and torchvision have given the steps between crop and normalisation.
_TO_RGB = {"_convert_to_rgb", "MaybeConvertMode", "convert_to_rgb"}
_TO_TENSOR = {"ToTensor", "MaybeToTensor"}


def _name(step: Any) -> str:
    return getattr(step, "__name__", type(step).__name__)


@dataclass(frozen=True)
class InputGeometry:
    """``size``: the square input side; ``resize``/``crop``: the model's own PIL steps;
    ``mean``/``std``: per channel, in [0, 1] units; ``interpolation``: the resize filter's name."""

    size: int
    resize: Callable
    crop: Callable
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str

    @classmethod
    def of(cls, preprocess: Any) -> InputGeometry | None:
        """The geometry of a ``Resize(int) -> CenterCrop -> [RGB] -> ToTensor -> Normalize``
        transform, or None for any other."""
        steps = list(getattr(preprocess, "transforms", []))
        names = [_name(t) for t in steps]
        if len(steps) < 4 or names[:2] != ["Resize", "CenterCrop"] or names[-1] != "Normalize":
            return None
        if not set(names[2:-1]) <= _TO_RGB | _TO_TENSOR or not set(names[2:-1]) & _TO_TENSOR:
            return None
        resize, crop, norm = steps[0], steps[1], steps[-1]
        size = resize.size[0] if isinstance(resize.size, (list, tuple)) and len(resize.size) == 1 else resize.size
        crop_size = tuple(crop.size)
        if not isinstance(size, int) or getattr(resize, "max_size", None) or crop_size != (size, size):
            return None
        mean, std = tuple(float(v) for v in norm.mean), tuple(float(v) for v in norm.std)
        if len(mean) != 3 or len(std) != 3:
            return None
        interpolation = getattr(resize.interpolation, "value", str(resize.interpolation))
        return cls(size, resize, crop, mean, std, interpolation)

    @property
    def draft_size(self) -> int:
        """JPEGs may be decoded at any scale whose shorter side stays >= this."""
        return self.size

    def to_uint8(self, image: Any) -> torch.Tensor:
        """``uint8 [3, S, S]`` of an RGB PIL image: the model's resize and crop, nothing else."""
        array = np.asarray(self.crop(self.resize(image.convert("RGB"))), dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def normalize(self, pixels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float half of the transform on a ``uint8 [B, 3, S, S]`` batch, on its device:
        ``(x / 255 - mean) / std`` as ``ToTensor`` and ``Normalize`` compute it."""
        x = pixels.float().div(255)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std).to(dtype)


def resize_crop(images: Sequence[torch.Tensor], geometry: InputGeometry) -> torch.Tensor:
    """``uint8 [B, 3, S, S]`` from decoded ``uint8 [3, H, W]`` images on any device: shorter
    side to ``S`` with an antialiased filter of the model's kind, then the centre crop (the
    same output size and crop offsets as torchvision's Resize and CenterCrop)."""
    mode = "bicubic" if geometry.interpolation == "bicubic" else "bilinear"
    s = geometry.size
    out = []
    for img in images:
        h, w = img.shape[-2:]
        nh, nw = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        x = img.unsqueeze(0).float()
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode=mode, antialias=True, align_corners=False)
        top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
        out.append(x[..., top:top + s, left:left + s].round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)
