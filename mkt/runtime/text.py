"""CLIP's text tower on ONNX Runtime, fp32: the same label and query embeddings, several times faster.

The transformer of :func:`mkt.text.run_tower` (token embeddings in, prompt context already in
place; projected features at each end token out) is exported once per model version
(``<cache>/<version>/text-<length>.onnx``, one per length bucket, batch dynamic) and run in fp32, so its embeddings
are PyTorch's to float rounding (tests/test_runtime.py): no new model version. Measured on
ViT-B-32, 8 query texts of 11 tokens, 2 cores under load: PyTorch 284 ms, ONNX Runtime 76 ms.
A model with ``text_runtime`` set uses it in :meth:`~mkt.tagmodel.TagModel.encode_labels`
(through :data:`mkt.text.TEXT_RUNNER`); training, which needs gradients, never does.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.atomic import atomic_write
from mkt.runtime import cpu_threads, failure_reason, split_version
from mkt.runtime.export import OPSET, OnnxTower
from mkt.tagmodel import TagModel
from mkt.text import can_trim, text_tower
from mkt.weights import cache_root

log = logging.getLogger(__name__)

LENGTHS = (8, 12, 16, 24, 32, 48)  # exported text lengths (positions); longer texts run at the context length


class _TextTower(nn.Module):
    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        t = self.tower
        n = x.shape[1]
        x = x + t.positional_embedding[:n]
        x = t.transformer(x, attn_mask=t.attn_mask[:n, :n])
        x = t.ln_final(x)
        x = x[torch.arange(x.shape[0]), eot]
        proj = t.text_projection
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def export_text(model: TagModel, folder: Path, length: int) -> Path:
    """``folder/text-<length>.onnx``: the transformer for texts of ``length`` positions (the
    tracer fixes the sequence length of attention's reshapes; the batch stays dynamic)."""
    path = folder / f"text-{length}.onnx"
    if path.exists():
        return path
    tower = text_tower(model.clip)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
            warnings.simplefilter("ignore")
            example = torch.zeros(2, length, tower.transformer.width)  # made here: not inference tensors
            eot = torch.tensor([length - 1, 1])
            torch.onnx.export(_TextTower(tower).eval(), (example, eot), str(tmp), dynamo=False,
                              input_names=["x", "eot"], output_names=["features"], opset_version=OPSET,
                              dynamic_axes={"x": {0: "batch"}, "eot": {0: "batch"}, "features": {0: "batch"}})

    return atomic_write(path, write)


def bucket(n: int, context: int) -> int:
    """The exported length a text of ``n`` positions runs at: the next of :data:`LENGTHS`."""
    return min([b for b in LENGTHS if b >= n] + [context])


class TextRuntime:
    """The exported text transformer of one model (opened on first use); ``serves(tower)`` says
    whether a tower is the one it was exported from. When exporting or opening it fails (ONNX
    Runtime unimportable, a cache it cannot write) it says so once and PyTorch's tower serves on:
    the same embeddings, so nothing else changes."""

    def __init__(self, model: TagModel) -> None:
        self._model = model
        self._tower = text_tower(model.clip)
        self._sessions: dict[int, OnnxTower] = {}
        self._lock = threading.Lock()
        self.failed: str | None = None  # why ONNX Runtime could not run it

    def serves(self, tower: nn.Module) -> bool:
        return tower is self._tower and not torch.is_grad_enabled() and self.failed is None

    def __call__(self, x: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Features at ``eot`` of token embeddings ``x`` [B, n, W]: padded with zeros to the bucket's
        length, which changes nothing before the end tokens (the tower is causal)."""
        length = bucket(x.shape[1], int(self._tower.attn_mask.shape[0]))
        with self._lock:
            if length not in self._sessions and self.failed is None:
                try:
                    path = export_text(self._model, cache_root() / split_version(self._model.version)[0], length)
                    self._sessions[length] = OnnxTower(path, cpu_threads(), inputs=("x", "eot"))
                except Exception as exc:  # PyTorch's tower computes the same features
                    self.failed = failure_reason(exc)
                    log.warning("the text tower runs on PyTorch: ONNX Runtime failed (%s); "
                                "set TAGSCOPE_RUNTIME=torch to skip the try", self.failed)
            session = self._sessions.get(length)
        if session is None:
            return _TextTower(self._tower)(x.to(self._tower.transformer.get_cast_dtype()), eot)
        padded = np.zeros((x.shape[0], length, x.shape[2]), np.float32)
        padded[:, : x.shape[1]] = x.detach().float().cpu().numpy()
        return torch.from_numpy(session.run_once(padded, eot.detach().cpu().numpy().astype(np.int64))).to(x.device)


def text_runtime_for(model: TagModel) -> TextRuntime | None:
    """A text runtime for ``model`` where it applies: a causal CLIP text tower on the CPU."""
    from mkt.runtime import available

    tower = text_tower(model.clip)
    if model.device.type != "cpu" or not available("onnx") or not can_trim(tower):
        return None
    return TextRuntime(model)
