"""``auto`` cannot fail: a runtime that does not work here leaves the image tower on PyTorch.

ONNX Runtime or OpenVINO can fail where PyTorch works: a package that is missing or half
installed (its import raises), an operator the exporter does not know, a cache folder
(``TAGSCOPE_RUNTIME_CACHE``) that cannot be written. With ``runtime = auto`` such a failure is
one warning line naming each runtime's reason, and the model stays PyTorch's, so its version id
(the one stored with the vectors) is PyTorch's too. The chosen runtime's tower is opened before
the version is decided: a version never names a runtime that could not run. A runtime named
explicitly fails instead, with one line (:class:`mkt.runtime.RuntimeFailed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mkt.runtime import NAMES, failure_reason
from mkt.runtime.model import fastest
from mkt.tagmodel import TagModel

log = logging.getLogger(__name__)


def auto_model(model: TagModel, on_runtime: Callable[[str], TagModel]) -> TagModel:
    """The fastest runtime of ``model`` that works here: ``on_runtime(name)`` makes the model on
    runtime ``name`` (``onnx``, ``openvino``) with its tower opened; ``model`` (PyTorch) when
    PyTorch is fastest or every other runtime failed."""
    failures: dict[str, str] = {}
    try:
        name = fastest(model, failures)
    except Exception as exc:  # measuring itself: the calibration set, the cache's meta.json
        failures["auto"] = failure_reason(exc)
        name = "torch"
    chosen = model
    if name != "torch":
        try:
            chosen = on_runtime(name)
        except Exception as exc:
            failures[name] = failure_reason(exc)
    if failures:
        log.warning("%s", fallback_message(failures, chosen, name if chosen is not model else "torch"))
    return chosen


def fallback_message(failures: dict[str, str], chosen: TagModel, runtime: str) -> str:
    """The one warning line: what failed and why, what runs instead, and how to skip the try."""
    names = {**NAMES, "auto": "measuring the runtimes"}
    why = "; ".join(f"{names[name]} failed ({reason})" for name, reason in failures.items())
    return (f"runtime auto: {why}: the image tower runs on {NAMES[runtime]} (model version {chosen.version}); "
            "set TAGSCOPE_RUNTIME=torch (or --runtime torch) to skip the try")
