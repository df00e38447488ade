"""A tag model whose image tower runs on ONNX Runtime or OpenVINO: :func:`with_runtime`.

The returned model shares everything with the PyTorch one (text tower, prompt, head, transform)
except :meth:`~mkt.tagmodel.TagModel.encode_images` and its version id, which says the runtime
and precision (:func:`mkt.runtime.suffix`). The precision of a runtime is chosen once per model
version and kept in ``<cache>/<version>/meta.json`` with the agreement figures that decided it.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from pathlib import Path

import torch

from core.atomic import atomic_write_bytes
from core.errors import TagscopeError
from mkt.runtime import PRECISIONS, RuntimeFailed, available, cpu_threads, failure_reason, suffix
from mkt.runtime.agreement import calibration_labels, calibration_pixels, measure
from mkt.runtime.export import embed, open_tower, openvino_bf16, wants_patches
from mkt.runtime.text import text_runtime_for
from mkt.tagmodel import ImageEmbeddings, TagModel
from mkt.weights import cache_root

log = logging.getLogger(__name__)

BATCH = 32  # photos a batch when auto times the runtimes


class ImageRuntime:
    """An exported image tower attached to a model (``TagModel.image_runtime``), opened (and
    exported, if it is not cached yet) on first use: a process that only searches by text never
    opens it."""

    def __init__(self, model: TagModel, runtime: str, precision: str) -> None:
        self.runtime, self.precision = runtime, precision
        self.patches = wants_patches(model)
        self._model = model  # the PyTorch model it was exported from
        self._tower = None
        self._lock = threading.Lock()

    @property
    def tower(self):
        with self._lock:
            if self._tower is None:
                folder = cache_root() / self._model.version
                try:
                    self._tower = open_tower(self._model, folder, self.runtime, self.precision, cpu_threads())
                except Exception as exc:  # a missing package, an unsupported operator, a cache it cannot write
                    raise RuntimeFailed(self.runtime, self._model.version, exc) from exc
            return self._tower

    def can_embed(self, want_patches: bool) -> bool:
        return self.patches or not want_patches

    def embed(self, pixels: torch.Tensor, want_patches: bool) -> ImageEmbeddings:
        out = embed(self.tower, pixels, self.patches)
        return out if want_patches else ImageEmbeddings(out.global_)

    def describe(self) -> str:
        return f"{'ONNX Runtime' if self.runtime == 'onnx' else 'OpenVINO'} {self.precision}"


def with_runtime(model: TagModel, runtime: str, precision: str | None = None) -> TagModel:
    """``model`` with its image tower on ``runtime`` (``onnx`` or ``openvino``; ``torch``: ``model``
    itself) at ``precision`` (None: the one chosen for this version, choosing it now if need be)."""
    if runtime == "torch":
        return model
    if runtime not in PRECISIONS:
        raise ValueError(f"unknown runtime {runtime!r}")
    if precision is not None and precision not in PRECISIONS[runtime]:
        raise ValueError(f"{runtime} runs {' or '.join(PRECISIONS[runtime])}, not {precision}")
    folder = cache_root() / model.version
    if precision is None:
        try:
            precision = (read_meta(folder).get(runtime, {}).get("precision")
                         or choose(model, folder, runtime, cpu_threads()))
        except TagscopeError:
            raise
        except Exception as exc:  # exporting or opening the tower to measure it
            raise RuntimeFailed(runtime, model.version, exc) from exc
    out = copy.copy(model)  # shares the modules and parameters; its own attributes
    out.version = model.version + suffix(runtime, precision)
    out.image_runtime = ImageRuntime(model, runtime, precision)
    out.text_runtime = text_runtime_for(model)  # fp32: the same label embeddings, faster
    return out


def with_text_runtime(model: TagModel) -> TagModel:
    """``model`` (same version) with its text transformer on ONNX Runtime fp32 where that applies."""
    if model.__dict__.get("text_runtime") is not None:
        return model
    runner = text_runtime_for(model)
    if runner is None:
        return model
    out = copy.copy(model)
    out.text_runtime = runner
    return out


def read_meta(folder: Path) -> dict:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def choose(model: TagModel, folder: Path, runtime: str, threads: int) -> str:
    """The precision of ``runtime`` for ``model``: the reduced one when it passes the agreement
    bar on the bundled calibration set, else fp32; recorded in ``meta.json``."""
    pixels = calibration_pixels(model)
    patches = wants_patches(model)
    with torch.inference_mode():
        reference = model.encode_images(pixels.to(model.device), with_patches=patches)
    reference = ImageEmbeddings(reference.global_.cpu(), None if reference.patches is None else reference.patches.cpu())
    labels = calibration_labels(model)
    figures, chosen = {}, "fp32"
    for precision in PRECISIONS[runtime]:
        if precision == "bf16" and not openvino_bf16():
            continue
        tower = open_tower(model, folder, runtime, precision, threads)
        agreement = measure(model, reference, embed(tower, pixels, patches), labels)
        figures[precision] = agreement.as_dict()
        if precision == "fp32" or agreement.passes(margin=True):
            chosen = precision
            break
        log.info("%s %s of %s agrees too little with PyTorch fp32 (%s): fp32", runtime, precision, model.version,
                 agreement.as_dict())
    meta = read_meta(folder)
    meta[runtime] = {"precision": chosen, "agreement": figures}
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
    return chosen


def fastest(model: TagModel, failures: dict[str, str] | None = None) -> str:
    """``auto`` on a CPU: the fastest of PyTorch and the installed runtimes (each at its chosen
    precision) on a batch of the calibration set, measured once per model version and kept in
    ``meta.json``. A runtime that fails to export or open is left out, its reason put in
    ``failures``; the choice is then not kept, so a repaired runtime is tried again next time."""
    folder = cache_root() / model.version
    known = read_meta(folder).get("auto", {}).get("runtime")
    if known is not None:
        return known
    failures = {} if failures is None else failures
    pixels = calibration_pixels(model, BATCH)
    speeds = {"torch": images_per_s(model, pixels)}
    for runtime in PRECISIONS:
        if available(runtime):
            try:
                speeds[runtime] = images_per_s(with_runtime(model, runtime), pixels)
            except Exception as exc:
                failures[runtime] = failure_reason(exc)
    best = max(speeds, key=speeds.get)
    if not failures:
        meta = read_meta(folder)
        meta["auto"] = {"runtime": best, "img_s": {k: round(v, 1) for k, v in speeds.items()}, "batch": BATCH}
        atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
    return best


def images_per_s(model: TagModel, pixels: torch.Tensor, repeats: int = 2) -> float:
    patches = wants_patches(model)
    with torch.inference_mode():
        model.encode_images(pixels, with_patches=patches)  # warm-up (and a first session's set-up)
        start = time.perf_counter()
        for _ in range(repeats):
            model.encode_images(pixels, with_patches=patches)
    return repeats * len(pixels) / (time.perf_counter() - start)
