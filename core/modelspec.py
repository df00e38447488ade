"""Model specs: parsed once, when settings load, into one canonical value (see :mod:`mkt.factory`
for what each kind loads). Parsing imports nothing heavy."""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import TagscopeError

DEFAULT_MODEL_SPEC = "open_clip:ViT-B-32:laion2b_s34b_b79k"
# Bundles shipped in the package (mkt/assets): the tiny CLIP of the synthetic world (zero-shot), and
# MKT trained from it on the world's seen labels (the demo's model).
BUILTIN_MODELS = ("synthetic", "synthetic-mkt")
WEIGHT_SUFFIXES = {".bin", ".safetensors", ".pt", ".pth"}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec in canonical form: file paths absolute, so the same model named from
    two working directories (``mkt:runs/b.pt`` and ``mkt:/home/me/runs/b.pt``) is one value, and
    ``str(spec)`` is what SQL stores and what comparisons use. The identity of the model itself
    is the version id of what it loads (:class:`core.schema.ModelVersion`)."""

    kind: str  # "open_clip" | "mkt" | one of BUILTIN_MODELS
    arch: str = ""
    pretrained: str = ""  # a pretrained tag, or an absolute weights file path
    path: str = ""  # mkt: absolute bundle path

    def __str__(self) -> str:
        if self.kind in BUILTIN_MODELS:
            return self.kind
        if self.kind == "mkt":
            return f"mkt:{self.path}"
        return f"open_clip:{self.arch}" + (f":{self.pretrained}" if self.pretrained else "")


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _looks_like_file(pretrained: str) -> bool:
    """A weights file rather than a pretrained tag (tags have no path separators or suffixes)."""
    return "/" in pretrained or os.sep in pretrained or Path(pretrained).suffix.lower() in WEIGHT_SUFFIXES \
        or Path(pretrained).expanduser().exists()


def parse_spec(spec: str | ModelSpec) -> ModelSpec:
    """Parse a model spec into its canonical value (relative paths resolved against the working
    directory now); raises :class:`TagscopeError` naming the accepted forms."""
    if isinstance(spec, ModelSpec):
        return spec
    spec = (spec or "").strip()
    if spec in BUILTIN_MODELS:
        return ModelSpec(spec)
    kind, _, rest = spec.partition(":")
    if kind == "mkt" and rest:
        return ModelSpec("mkt", path=_absolute(rest))
    if kind == "open_clip" and rest:
        arch, _, pretrained = rest.partition(":")
        if pretrained and _looks_like_file(pretrained):
            pretrained = _absolute(pretrained)
        if arch:
            return ModelSpec("open_clip", arch=arch, pretrained=pretrained)
    raise TagscopeError(
        f"unknown model spec {spec!r}: use open_clip:ARCH:PRETRAINED (e.g. {DEFAULT_MODEL_SPEC}), "
        "open_clip:ARCH, mkt:PATH, synthetic or synthetic-mkt")


def offline_error(spec: ModelSpec, why: str) -> TagscopeError:
    return TagscopeError(
        f"cannot load weights {spec.arch}:{spec.pretrained} ({why}): download them once on a machine with internet "
        f"and HF_HUB_OFFLINE unset, or pass a local file: --model open_clip:{spec.arch}:/path/to/weights.safetensors")


def _weight_caches() -> list[Path]:
    env = os.environ
    hub = env.get("HF_HUB_CACHE") or (Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME") else None)
    cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [Path(hub) if hub else cache_home / "huggingface" / "hub", cache_home / "clip"]


HUB_PROBE_TIMEOUT_S = 3.0


def stock_architecture(arch: str) -> bool:
    """Whether open_clip ships a config for ``arch``: read from its package folder, without
    importing it (that imports torch)."""
    found = importlib.util.find_spec("open_clip")
    folders = (found.submodule_search_locations or ()) if found is not None else ()
    return bool(arch) and "/" not in arch and any((Path(f) / "model_configs" / f"{arch}.json").is_file()
                                                  for f in folders)


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off for this process: the one place that decides,
    with huggingface_hub's own reading of ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``): true
    for 1, ON, YES or TRUE in any case, so ``HF_HUB_OFFLINE=false`` means online. Read at each
    call, not frozen at import as huggingface_hub's own constant is."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in constants.ENV_VARS_TRUE_VALUES


def check_offline_weights(spec: ModelSpec, probe_network: bool = False) -> None:
    """With no model weights cached at all, fail at once, before the seconds it takes to import
    torch and open_clip: when HF_HUB_OFFLINE is set, or (``probe_network``: the command line,
    before its imports) when the hub or the HTTPS proxy does not answer a TCP connection within
    :data:`HUB_PROBE_TIMEOUT_S` (no network: the hub's own retries take about a minute).
    Anything cached, or an architecture open_clip does not ship (unknown, or one of ours): the
    real loader decides, and names what is wrong first (an unknown architecture, a wrong tag)."""
    if spec.kind != "open_clip" or not spec.pretrained or Path(spec.pretrained).expanduser().exists():
        return
    if not stock_architecture(spec.arch):
        return
    for cache in _weight_caches():
        if cache.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in cache.rglob("*") if not p.is_dir()):
            return
    if hub_offline():
        raise offline_error(spec, "HF_HUB_OFFLINE is set")
    if not probe_network:
        return
    host, port = _hub_address()
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise offline_error(spec, f"{host}:{port} does not answer: {exc.strerror or type(exc).__name__}; "
                                  "no network?") from None


def _hub_address() -> tuple[str, int]:
    """Where a download would connect first: the HTTPS proxy if one is set, else the hub."""
    env = os.environ
    url = (env.get("HTTPS_PROXY") or env.get("https_proxy") or env.get("HF_ENDPOINT")
           or "https://huggingface.co")
    parsed = urlsplit(url if "://" in url else f"http://{url}")
    return parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)

