"""A tag model with its image tower on a runtime, once per process: :func:`model_on`.

:func:`mkt.factory.get_model` makes (and keeps) the PyTorch model a spec names; this module puts
its image tower on the runtime a job or a searcher asks for (``torch``, ``onnx``, ``openvino``,
``auto``, or a runtime with its precision as a version id names it) and keeps that too, made
again when the PyTorch model under it was (a bundle file replaced at the same path). ``auto``
never fails (:mod:`mkt.runtime.fallback`); a runtime named explicitly fails with one line.
"""

from __future__ import annotations

import torch

from core.errors import TagscopeError
from core.modelspec import ModelSpec, parse_spec
from mkt.factory import get_model
from mkt.runtime import available, resolve, split_version
from mkt.tagmodel import TagModel

# (spec, device, runtime) -> (the PyTorch model it was made from, the model on that runtime)
_runtimes: dict[tuple[str, str, str], tuple[TagModel, TagModel]] = {}


def model_on(spec: str | ModelSpec, device: str | torch.device = "cpu", runtime: str = "torch") -> TagModel:
    """:func:`mkt.factory.get_model` with its image tower on ``runtime``: ``torch``, ``onnx``,
    ``openvino``, ``auto`` (resolved for ``device``), or a runtime with its precision (``onnx-int8``,
    ``openvino-fp32``: what a version id names, to make that version again; :func:`runtime_of`)."""
    model = get_model(spec, device)
    key = (str(parse_spec(spec)), str(device))
    name, _, precision = runtime.partition("-")
    name = resolve(name, str(device))
    if name == "torch":
        return model
    if name == "auto":  # never fails: a runtime that does not work here falls back to PyTorch
        from mkt.runtime.fallback import auto_model

        return _kept((*key, "auto"), model, lambda: auto_model(
            model, lambda chosen: _on_runtime(model, key, chosen, "", open_now=True)))
    return _on_runtime(model, key, name, precision)


def _kept(rkey: tuple[str, str, str], model: TagModel, make) -> TagModel:
    """The model kept under ``rkey`` when it was made from ``model``, else ``make()``, kept."""
    kept = _runtimes.get(rkey)
    if kept is None or kept[0] is not model:
        _runtimes[rkey] = (model, make())
    return _runtimes[rkey][1]


def _on_runtime(model: TagModel, key: tuple[str, str], name: str, precision: str, open_now: bool = False) -> TagModel:
    """``model`` with its image tower on runtime ``name`` (once per process), the tower opened
    now when ``open_now`` (else on first use); a failure is a one-line :class:`mkt.runtime.RuntimeFailed`."""
    if not available(name):
        package = "onnxruntime" if name == "onnx" else "openvino"
        raise TagscopeError(f"runtime {name} needs {package}: pip install {package}, or set TAGSCOPE_RUNTIME=torch")

    def make() -> TagModel:
        from mkt.runtime.model import with_runtime

        return with_runtime(model, name, precision or None)

    made = _kept((*key, f"{name}-{precision}"), model, make)
    if open_now:
        made.image_runtime.tower  # noqa: B018 - opening it is the point: it fails here or works
    return made


def runtime_of(version: str) -> str:
    """The ``runtime`` argument of :func:`model_on` that makes ``version`` again."""
    _, name, precision = split_version(version)
    return "torch" if name == "torch" else f"{name}-{precision}"
