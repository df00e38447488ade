"""Loading a model's weights without paying twice (issue 23: the fixed cost of a run).

- :func:`skipped_init`: building a model whose every weight a strict load overwrites right
  after (pretrained open_clip weights, a bundle's) skips the random initialisation of its
  parameters: 1.3-1.7 s for ViT-B-32 on 2 cores, for values thrown away.
- :func:`file_digest`: a local weights file's SHA-256 (its part of the model version id) is
  computed once per file state (size, mtime, inode) and remembered in the runtime cache: a 600 MB
  file hashes in about a second, at every start of a command or worker otherwise.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from core.files import file_sha256


def cache_root() -> Path:
    """Where Tagscope keeps what it derives from a model's files (exported towers of
    :mod:`mkt.runtime`, weight files' digests): ``TAGSCOPE_RUNTIME_CACHE``, else the user's cache folder."""
    if os.environ.get("TAGSCOPE_RUNTIME_CACHE"):
        return Path(os.environ["TAGSCOPE_RUNTIME_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tagscope" / "runtimes"


# The in-place fillers initialisation goes through: torch.nn.init's functions (nn.Linear,
# open_clip's init_parameters) and the tensor methods they and others call (MultiheadAttention
# imports xavier_uniform_ by name, timm's trunc_normal_ fills through uniform_ ...).
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                   "sparse_")
_TENSOR_FILLERS = ("uniform_", "normal_", "random_", "exponential_", "geometric_", "log_normal_", "cauchy_")
_lock = threading.RLock()


def _unchanged(tensor: torch.Tensor, *_args: object, **_kwargs: object) -> torch.Tensor:
    return tensor


@contextmanager
def skipped_init() -> Iterator[None]:
    """Parameters created inside keep whatever ``torch.empty`` gave them: ONLY for a model whose
    every parameter and persistent buffer a strict load fills next (a load that reports missing
    keys must then fail). Deterministic buffers (a causal mask, ones, arange) are made as usual.
    Process-wide while it lasts (it patches ``torch.nn.init`` and the tensor fillers): model
    builds in other threads wait for it (:func:`building`)."""
    with _lock:
        saved = [(torch.nn.init, name, getattr(torch.nn.init, name)) for name in _INIT_FUNCTIONS
                 if hasattr(torch.nn.init, name)]
        saved += [(torch.Tensor, name, torch.Tensor.__dict__.get(name)) for name in _TENSOR_FILLERS]
        try:
            for owner, name, _ in saved:
                setattr(owner, name, _unchanged)
            yield
        finally:
            for owner, name, original in saved:
                if original is None:  # a method of the C base class: unshadow it
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)


@contextmanager
def building() -> Iterator[None]:
    """A model build that initialises its weights: never while :func:`skipped_init` holds."""
    with _lock:
        yield


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256, remembered per (path, size, mtime, inode)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    memo = cache_root() / "file-digests.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(real)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("digest"), str):
        return entry["digest"]
    digest = file_sha256(real, 1 << 22)[:16]
    known[real] = {"stamp": stamp, "digest": digest}
    try:  # a cache: a read-only home only costs the next start the hashing again
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest
