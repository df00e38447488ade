"""Where a tag model's image tower runs: PyTorch, ONNX Runtime or OpenVINO (``runtime`` setting).

Most people who tag a photo library have no GPU; on a CPU the image tower runs several times
faster exported to ONNX and run by ONNX Runtime with int8 weights (dynamic quantization) or by
OpenVINO (bf16 where the CPU has it). The exported tower is cached per model version
(:mod:`mkt.runtime.export`); its precision is chosen once, when it is exported: the reduced one
(int8, bf16) only when it keeps the agreement with PyTorch fp32 on a calibration set
(:mod:`mkt.runtime.agreement`), else fp32.

The version id of a model says what produced its stored vectors: PyTorch keeps the model's own
id; another runtime adds ``-onnx-int8``, ``-openvino-bf16``, ``-onnx-fp32``... (:func:`suffix`), so
a collection tagged by two runtimes holds two versions and search never mixes their vectors.
Only the image tower moves: label and query texts always go through PyTorch's text tower, the
same in every version, so a search server on any runtime serves a collection tagged by any other
(it follows the version the collection was tagged with).
"""

from __future__ import annotations

from core.errors import TagscopeError
from core.settings import RUNTIMES

PRECISIONS = {"onnx": ("int8", "fp32"), "openvino": ("bf16", "fp32")}  # preferred first
NAMES = {"torch": "PyTorch", "onnx": "ONNX Runtime", "openvino": "OpenVINO"}


class RuntimeFailed(TagscopeError):
    """A runtime named explicitly could not export or open the image tower (``auto`` falls back
    to PyTorch instead: :mod:`mkt.runtime.fallback`); ``reason`` is the cause, on one line."""

    def __init__(self, runtime: str, version: str, exc: BaseException) -> None:
        self.runtime, self.reason = runtime, failure_reason(exc)
        super().__init__(f"runtime {runtime} failed for model version {version} ({self.reason}): fix that, "
                         "or use --runtime auto (falls back to PyTorch) or --runtime torch")


def failure_reason(exc: BaseException) -> str:
    """Why exporting or opening a tower failed, on one line: ``ImportError: libfoo.so ...``."""
    if isinstance(exc, RuntimeFailed):
        return exc.reason
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def suffix(runtime: str, precision: str) -> str:
    return "" if runtime == "torch" else f"-{runtime}-{precision}"


def split_version(version: str) -> tuple[str, str, str]:
    """(base version, runtime, precision) of a version id: ``abc-onnx-int8`` -> (abc, onnx, int8)."""
    for runtime, precisions in PRECISIONS.items():
        for precision in precisions:
            tail = suffix(runtime, precision)
            if version.endswith(tail):
                return version[: -len(tail)], runtime, precision
    return version, "torch", "fp32"


def available(runtime: str) -> bool:
    """Whether ``runtime``'s package is installed (PyTorch always is)."""
    if runtime == "torch":
        return True
    import importlib.util

    return importlib.util.find_spec("onnxruntime" if runtime == "onnx" else "openvino") is not None


def resolve(runtime: str, device: str) -> str:
    """The runtime that ``runtime`` names on ``device``: ``auto`` is PyTorch on a GPU; on a CPU it
    stays ``auto`` while a runtime package is installed (the fastest is then measured,
    :func:`mkt.runtime.model.fastest`), else it is PyTorch."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "auto" and (not str(device).startswith("cpu") or not any(available(n) for n in PRECISIONS)):
        return "torch"
    return runtime  # named: honoured on any device (a job queued for it must make its version)


def cpu_threads() -> int:
    """The threads an exported tower may use: PyTorch's (``torch.set_num_threads``, the cores)."""
    import torch

    return max(1, torch.get_num_threads())
