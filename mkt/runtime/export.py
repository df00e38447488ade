"""A tag model's image tower exported once per model version, and run by ONNX Runtime or OpenVINO.

``<cache>/<version>/image.onnx`` is the tower (pixels -> L2-normalised global embedding, and the
normalised patch embeddings when the model scores a local stream) traced from PyTorch;
``image.int8.onnx`` the same with int8 weights (ONNX Runtime's dynamic quantization: weights
quantized once, activations per batch, so it needs no calibration data to run, only to check).
Files are written atomically: two processes exporting at once both leave a whole file.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.atomic import atomic_write
from mkt.tagmodel import ImageEmbeddings, TagModel, vision_features

log = logging.getLogger(__name__)

OPSET = 17
ORT_CHUNK = 16  # images per ONNX Runtime call


class _ImageTower(nn.Module):
    """What the runtimes run: the model's image tower and the normalisation after it."""

    def __init__(self, visual: nn.Module, patches: bool) -> None:
        super().__init__()
        self.visual = visual
        self.patches = patches

    def forward(self, pixels: torch.Tensor):
        if not self.patches:
            return F.normalize(self.visual(pixels).float(), dim=-1)
        pooled, tokens = vision_features(self.visual, pixels)
        return F.normalize(pooled.float(), dim=-1), F.normalize(tokens.float(), dim=-1)


def wants_patches(model: TagModel) -> bool:
    return model.local_top_k > 0 and model.has_patches


def input_size(model: TagModel) -> int:
    size = getattr(model.clip.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def export_onnx(model: TagModel, folder: Path) -> Path:
    """``folder/image.onnx`` (exported now unless it is there)."""
    path = folder / "image.onnx"
    if path.exists():
        return path
    patches = wants_patches(model)
    visual = model.clip.visual if model.device.type == "cpu" else copy.deepcopy(model.clip.visual).cpu()
    tower = _ImageTower(visual, patches).eval()
    size = input_size(model)
    outputs = ["global", "patches"] if patches else ["global"]
    axes = {"pixels": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}

    def write(tmp: Path) -> None:
        # with gradients on: attention's inference fast path (_native_multi_head_attention) has no
        # ONNX form; the traced graph is the same computation
        with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            example = torch.zeros(2, 3, size, size)  # made here: not an inference-mode tensor
            torch.onnx.export(tower, (example,), str(tmp), dynamo=False, input_names=["pixels"],
                              output_names=outputs, dynamic_axes=axes, opset_version=OPSET)

    try:
        atomic_write(path, write)
    finally:
        visual.output_tokens = False
    log.info("exported the image tower of %s to %s", model.version, path)
    return path


def quantize_int8(source: Path) -> Path:
    """``image.int8.onnx`` beside ``source``: int8 weights (ONNX Runtime dynamic quantization)."""
    path = source.with_name("image.int8.onnx")
    if path.exists():
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # its "pre-process" advice
    try:
        atomic_write(path, lambda tmp: quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8))
    finally:
        logging.getLogger().disabled = was
    return path


class OnnxTower:
    """The exported tower in an ONNX Runtime session (CPU, ``threads`` intra-op threads)."""

    def __init__(self, path: Path, threads: int, inputs: tuple[str, ...] = ("pixels",)) -> None:
        import onnxruntime as ort

        self.inputs = inputs

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle threads sleep instead of spinning: the decode workers beside the model need the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        # ONNX Runtime's int8 kernels run a ViT-B/32 batch of 16 ~1.4x faster per image than one
        # of 64 on 2 cores (their working set stays in cache): large batches go through in chunks
        parts = [self.session.run(None, {"pixels": pixels[i:i + ORT_CHUNK]}) for i in range(0, len(pixels), ORT_CHUNK)]
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    def run_once(self, *arrays: np.ndarray) -> np.ndarray:
        """The first output for ``arrays``, one per input name, in one call."""
        return self.session.run(None, dict(zip(self.inputs, arrays)))[0]


class OpenVinoTower:
    """The exported tower compiled by OpenVINO for the CPU, at ``precision`` (fp32 or bf16)."""

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                           {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint})
        self._lock = threading.Lock()  # calling the compiled model reuses one infer request

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            result = self.compiled(pixels)
            return [np.array(result[i]) for i in range(len(self.compiled.outputs))]


def openvino_bf16() -> bool:
    """Whether this CPU runs bf16 natively (OpenVINO says so)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def open_tower(model: TagModel, folder: Path, runtime: str, precision: str, threads: int):
    """The runnable tower of ``model`` for ``runtime`` at ``precision``, exporting what is missing."""
    source = export_onnx(model, folder)
    if runtime == "onnx":
        return OnnxTower(quantize_int8(source) if precision == "int8" else source, threads)
    if runtime == "openvino":
        return OpenVinoTower(source, threads, precision)
    raise ValueError(f"no exported tower for runtime {runtime!r}")


def embed(tower, pixels: torch.Tensor, patches: bool) -> ImageEmbeddings:
    """:class:`ImageEmbeddings` of a float pixel batch through an exported ``tower``."""
    outputs = tower(np.ascontiguousarray(pixels.detach().float().cpu().numpy()))
    global_ = torch.from_numpy(np.asarray(outputs[0], dtype=np.float32)).to(pixels.device)
    local = (torch.from_numpy(np.asarray(outputs[1], dtype=np.float32)).to(pixels.device)
             if patches and len(outputs) > 1 else None)
    return ImageEmbeddings(global_, local)
