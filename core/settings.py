"""The one configuration object.

Precedence: explicit overrides (CLI flags) > environment (``TAGSCOPE_*``) > ``tagscope.toml``
(in the working directory, or the file ``TAGSCOPE_CONFIG`` names) > defaults.

| setting        | env                      | default                                   |
|----------------|--------------------------|-------------------------------------------|
| home           | TAGSCOPE_HOME            | ./tagscope-data                            |
| database_url   | TAGSCOPE_DATABASE_URL    | sqlite:///<home>/tagscope.sqlite (WAL)     |
| broker_url     | TAGSCOPE_BROKER_URL      | unset: tasks run in-process                |
| model          | TAGSCOPE_MODEL           | unset: tag with DEFAULT_MODEL_SPEC,        |
|                |                          | search with the collection's model         |
| device         | TAGSCOPE_DEVICE          | cuda if available, else cpu                |
| batch_size     | TAGSCOPE_BATCH_SIZE      | auto: 64 on CPU, 256 on CUDA               |
| loader_workers | TAGSCOPE_LOADER_WORKERS  | auto: min(4, cpu count) on CPU (the model  |
|                |                          | needs the cores), cpu count - 1 (<= 16) on |
|                |                          | CUDA; 0 decodes in the tagging process     |
| amp            | TAGSCOPE_AMP             | auto: bf16 on CUDA (fp16 where bf16 is     |
|                |                          | missing), fp32 on CPU; or bf16, fp16, off  |
| compile        | TAGSCOPE_COMPILE         | 0; 1 runs the image tower through          |
|                |                          | torch.compile (CUDA; eager if it fails)    |
| trusted_hosts  | TAGSCOPE_TRUSTED_HOSTS   | loopback names only; more, comma-separated |
| access_token   | TAGSCOPE_ACCESS_TOKEN    | unset; needed to serve beyond loopback     |
| web_threads    | TAGSCOPE_WEB_THREADS     | 8 threads of the web server (waitress)     |
| gpu_decode     | TAGSCOPE_GPU_DECODE      | 0.7: on CUDA, the share of JPEGs decoded   |
|                |                          | on the GPU (nvJPEG); the rest decode in    |
|                |                          | the workers at the same time (measured     |
|                |                          | best on an H100 with 15 decode workers);   |
|                |                          | 1: all on the GPU; 0: all on the CPU       |
| task_size      | TAGSCOPE_TASK_SIZE       | 2048 images per Celery task                |
| top_n          | TAGSCOPE_TOP_N           | 20 stored tags per image at most           |
| min_score      | TAGSCOPE_MIN_SCORE       | none: keep the top_n whatever their score  |
| max_pixels     | TAGSCOPE_MAX_PIXELS      | 178956970 (larger images fail as bombs)    |
| index_kind     | TAGSCOPE_INDEX_KIND      | auto (by size), flat, hnsw or ivfpq        |
| task_lease     | TAGSCOPE_TASK_LEASE      | 60 s: a dead worker's task is sent again    |
|                |                          | within about this long                     |
| beat_tick      | TAGSCOPE_BEAT_TICK       | 5 s between beat's checks for due schedules |
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import TagscopeError
from core.images import DEFAULT_MAX_PIXELS
from core.modelspec import DEFAULT_MODEL_SPEC, ModelSpec, parse_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE = "tagscope.toml"
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")  # see indexer.ann


AMP_MODES = ("auto", "bf16", "fp16", "off")
AUTO = -1  # batch_size / loader_workers chosen by device (Settings.batch_for, Settings.workers_for)


@dataclass(frozen=True)
class Settings:
    home: Path = Path("tagscope-data")
    database_url: str = ""
    broker_url: str = ""
    # Parsed once here into its canonical value; None = not set anywhere: tagging uses the
    # default model, searching the model the collection was tagged with.
    model: ModelSpec | None = None
    device: str = ""
    batch_size: int = AUTO
    loader_workers: int = AUTO
    task_size: int = 2048
    top_n: int = 20
    min_score: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    index_kind: str = "auto"
    task_lease: int = 60
    beat_tick: int = 5
    amp: str = "auto"
    trusted_hosts: str = ""
    access_token: str = ""
    web_threads: int = 8
    compile: int = 0
    gpu_decode: float = 0.7

    # -- derived paths ----------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'tagscope.sqlite').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def thumbs_dir(self) -> Path:
        return self.home / "thumbs"

    @property
    def embedded_broker_url(self) -> str:
        """The broker ``tagscope worker --embedded`` uses: kombu's SQLAlchemy transport on SQLite."""
        return f"sqla+sqlite:///{(self.home / 'broker.sqlite').resolve()}"

    @property
    def tagging_model(self) -> ModelSpec:
        """The model ``tagscope tag`` uses: the one set, or the default."""
        return self.model or parse_spec(DEFAULT_MODEL_SPEC)

    def resolved_device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def batch_for(self, device: str) -> int:
        if self.batch_size != AUTO:
            return self.batch_size
        return 256 if device.startswith("cuda") else 64

    def workers_for(self, device: str) -> int:
        if self.loader_workers != AUTO:
            return self.loader_workers
        cpus = os.cpu_count() or 1
        return max(1, min(16, cpus - 1)) if device.startswith("cuda") else min(4, cpus)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (``None`` values ignored), checked like any other source."""
        return dataclasses.replace(self, **{k: _coerce(k, v, f"--{k.replace('_', '-')}")
                                            for k, v in changes.items() if v is not None})


_ENV = {
    "home": "TAGSCOPE_HOME",
    "database_url": "TAGSCOPE_DATABASE_URL",
    "broker_url": "TAGSCOPE_BROKER_URL",
    "model": "TAGSCOPE_MODEL",
    "device": "TAGSCOPE_DEVICE",
    "batch_size": "TAGSCOPE_BATCH_SIZE",
    "loader_workers": "TAGSCOPE_LOADER_WORKERS",
    "task_size": "TAGSCOPE_TASK_SIZE",
    "top_n": "TAGSCOPE_TOP_N",
    "min_score": "TAGSCOPE_MIN_SCORE",
    "max_pixels": "TAGSCOPE_MAX_PIXELS",
    "index_kind": "TAGSCOPE_INDEX_KIND",
    "task_lease": "TAGSCOPE_TASK_LEASE",
    "beat_tick": "TAGSCOPE_BEAT_TICK",
    "amp": "TAGSCOPE_AMP",
    "trusted_hosts": "TAGSCOPE_TRUSTED_HOSTS",
    "access_token": "TAGSCOPE_ACCESS_TOKEN",
    "web_threads": "TAGSCOPE_WEB_THREADS",
    "compile": "TAGSCOPE_COMPILE",
    "gpu_decode": "TAGSCOPE_GPU_DECODE",
}


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    try:
        if name == "home":
            return Path(str(value)).expanduser()
        if name == "index_kind":
            if value not in INDEX_KINDS:
                raise TagscopeError(f"bad value {value!r} for index_kind in {source}: use one of "
                                    f"{', '.join(INDEX_KINDS)}")
            return str(value)
        if name == "amp":
            if value not in AMP_MODES:
                raise TagscopeError(f"bad value {value!r} for amp in {source}: use one of {', '.join(AMP_MODES)}")
            return str(value)
        if name == "gpu_decode":
            share = float(value)
            if not 0.0 <= share <= 1.0:
                raise TagscopeError(f"bad value {value!r} for gpu_decode in {source}: use a share from 0 to 1")
            return share
        if name == "compile":
            if str(value).lower() not in ("0", "1", "true", "false"):
                raise TagscopeError(f"bad value {value!r} for {name} in {source}: use 1 or 0")
            return int(str(value).lower() in ("1", "true"))
        if name == "model":
            try:
                return parse_spec(value)
            except TagscopeError as exc:
                raise TagscopeError(f"{exc} (model set in {source})") from None
        if kind in ("int",):
            out = int(value)
            if out < 0 or (name in ("batch_size", "task_size", "top_n", "max_pixels", "task_lease", "beat_tick",
                                    "web_threads")
                            and out == 0):
                raise ValueError
            return out
        if kind == "float | None":
            return None if value in ("", None) else float(value)
        return str(value)
    except (TypeError, ValueError):
        raise TagscopeError(f"bad value {value!r} for {name} in {source}: expected a positive {kind}") from None


def load_settings(environ: dict[str, str] | None = None, config_file: str | os.PathLike | None = None,
                  **overrides: Any) -> Settings:
    """Settings from ``tagscope.toml`` + environment + ``overrides`` (``None`` values ignored)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = Path(config_file or environ.get("TAGSCOPE_CONFIG") or CONFIG_FILE)
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise TagscopeError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
        section = data.get("tagscope", data)
        for key, value in section.items():
            if key not in _ENV:
                raise TagscopeError(f"unknown setting {key!r} in {path}; known: {', '.join(_ENV)}")
            values[key] = _coerce(key, value, str(path))
    elif config_file or environ.get("TAGSCOPE_CONFIG"):
        raise TagscopeError(f"config file {path} does not exist; create it or unset TAGSCOPE_CONFIG")
    for key, var in _ENV.items():
        if environ.get(var, "") != "":
            values[key] = _coerce(key, environ[var], var)
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    return Settings(**values)
