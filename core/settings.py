"""The one configuration object.

Precedence: explicit overrides (CLI flags) > environment (``TAGSCOPE_*``) > ``tagscope.toml``
(in the working directory, or the file ``TAGSCOPE_CONFIG`` names) > defaults.

Each setting is documented where it is declared (the metadata of ``Settings``' fields, key ``SETTING_DOC``)
and named in the environment by ``_ENV``; docs/configuration.md shows them as a table, written by
``python scripts/settings_table.py`` (tests/test_docs.py fails when the two disagree).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import TagscopeError
from core.modelspec import DEFAULT_MODEL_SPEC, ModelSpec, parse_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE = "tagscope.toml"
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")  # see indexer.ann


AMP_MODES = ("auto", "bf16", "fp16", "off")
RUNTIMES = ("auto", "torch", "onnx", "openvino")  # see mkt.runtime (the same names)
OCR_MODES = ("auto", "1", "0")  # see tagger.ocr_stage
AUTO = -1  # batch_size / loader_workers chosen by device (Settings.batch_for, Settings.workers_for)
MIN_DUPLICATE_THRESHOLD = 0.5  # below, photos are alike in subject, not copies (indexer.search.similar)
#: Pillow's default Image.MAX_IMAGE_PIXELS, written out so that our limit does not silently follow an
#: application's change to Pillow's global (core.media.limits refuses larger images from their header).
DEFAULT_MAX_PIXELS = 178_956_970


SETTING_DOC = "doc"  # the key of a field's documentation in its metadata


def _setting(default: Any, doc: str) -> Any:
    """A field of ``Settings`` with its documentation: default and meaning, as docs/configuration.md shows it."""
    return dataclasses.field(default=default, metadata={SETTING_DOC: doc})


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(Path("tagscope-data"), "`./tagscope-data` (database, index, thumbnails)")
    database_url: str = _setting("", "SQLite file `<home>/tagscope.sqlite`, WAL mode, migrates itself")
    broker_url: str = _setting(
        "", "unset: tasks run in-process; `embedded`: kombu's SQLAlchemy transport over `<home>/broker.sqlite`, "
            "for a `tagscope worker` without a server; `redis://...`; `amqp://...`")
    # Parsed once here into its canonical value; None = not set anywhere: tagging uses the
    # default model, searching the model the collection was tagged with.
    model: ModelSpec | None = _setting(
        None, f"unset: `tagscope tag` uses `{DEFAULT_MODEL_SPEC}`, `tagscope search` and `tagscope serve` the model "
              "the collection was tagged with")
    device: str = _setting("", "`cuda` if available, else `cpu`")
    batch_size: int = _setting(AUTO, "64 images per inference batch on CPU, 256 on CUDA")
    loader_workers: int = _setting(
        AUTO, "decode processes: min(4, CPUs) on CPU (the model needs the cores), CPUs - 1 (at most 16) on CUDA; "
              "0 decodes in the tagging process")
    task_size: int = _setting(2048, "2048 images per Celery task")
    top_n: int = _setting(20, "20 tags stored per image at most")
    min_score: float | None = _setting(None, "unset: keep the top `top_n` whatever their score")
    max_pixels: int = _setting(DEFAULT_MAX_PIXELS, f"{DEFAULT_MAX_PIXELS}; larger images fail as decompression bombs")
    index_kind: str = _setting(
        "auto", "`auto`: exact (flat) below 5x10^4 vectors, HNSW to 2x10^5, IVF-PQ above (thresholds measured "
                "with `bench.search`, in `indexer/kinds.py`), approximate kinds re-ranked exactly from the stored "
                "embeddings; or `flat`, `hnsw`, `ivfpq`")
    task_lease: int = _setting(60, "`60` seconds: a dead worker's task is sent again within about this long")
    beat_tick: int = _setting(5, "`5` seconds between beat's checks for due schedules")
    amp: str = _setting(
        "auto", "`auto`: bf16 autocast on CUDA (fp16 where bf16 is missing), fp32 on CPU; or `bf16`, `fp16`, `off`")
    trusted_hosts: str = _setting(
        "", "loopback names only (`localhost`, `127.0.0.1`, `::1`); add names, comma-separated, to reach the "
            "server by them")
    access_token: str = _setting(
        "", "unset; required (16+ characters) to serve beyond loopback: `Authorization: Bearer TOKEN`, or open "
            "`?token=TOKEN` once in a browser")
    web_threads: int = _setting(8, "`8` request threads of each `tagscope serve` process")
    web_processes: int = _setting(
        1, "`1`: `tagscope serve` in one process (waitress); N runs N processes on the port (gunicorn, Linux and "
           "macOS), each with its own model: N times the memory, up to N times the queries/s (set the cores of a "
           "search server)")
    runtime: str = _setting(
        "auto", "`auto`: on a CPU, the fastest of PyTorch, ONNX Runtime and OpenVINO for the model's image tower "
                "(measured once per model version), each at int8 / bf16 only where that agrees with PyTorch fp32 "
                "(else fp32); on a GPU, PyTorch. Or `torch`, `onnx`, `openvino`. Exported towers are cached per "
                "model version (`TAGSCOPE_RUNTIME_CACHE`, default `~/.cache/tagscope/runtimes`); a collection tagged "
                "on another runtime or precision holds another model version. Other than `torch`, label and query "
                "texts go through the text transformer on ONNX Runtime fp32 (the same embeddings)")
    compile: int = _setting(
        0, "`0`; `1` runs the image tower through `torch.compile` on CUDA (+29% model-only on an H100; eager if "
           "compiling fails)")
    gpu_decode: float = _setting(
        0.7, "`0.7`: on CUDA, the share of JPEGs decoded on the GPU (nvJPEG) while the decode workers decode the "
             "rest at the same time (measured best on an H100 with 15 decode workers); `1` all on the GPU, `0` all "
             "on the CPU")
    index_folder: str = _setting(
        "", "unset: `<home>/index`; the folder of this machine's copy of the vector index (each machine keeps its "
            "own; copies follow the database's change log)")
    keep_index: int = _setting(
        1, "`1`: this machine keeps a copy of the index and merges into it while it tags; `0` on a worker that does "
           "not serve search: it keeps none (search servers keep theirs current by themselves)")
    text_batch: int = _setting(
        32, "`32`: concurrent new query texts of a server share the text tower in batches of at most this many; "
            "`1` encodes each alone")
    duplicate_threshold: float | None = _setting(
        None, "unset: the model's own (calibrated for the bundled models by `python -m bench.duplicates`, 0.99 for "
              "others); else the cosine similarity (0.5 to 1) from which two photos are near-duplicates "
              "(`tagscope duplicates`, `/duplicates`, search's \"+N similar\")")
    thumb_cache_mb: int = _setting(
        512, "`512` MB of thumbnails the web UI keeps in `<home>/thumbs`; past it the least recently used are "
             "removed; `0` keeps none (each is made again when shown)")
    xmp_root: str = _setting(
        "Tagscope", "`Tagscope`: the keyword that XMP exports put labels in no keyword tree under "
                    "(`Tagscope/label` in `digiKam:TagsList`, the same path in `lr:hierarchicalSubject`); "
                    "`tagscope import xmp` adds no path under it to the vocabulary")
    ocr: str = _setting(
        "auto", "`auto`: tagging also reads the words in photos (OCR: RapidOCR's PP-OCR models on ONNX Runtime, "
                "CUDA where the worker's device is and `onnxruntime-gpu` provides it) when `rapidocr` can be "
                "imported, else warns once and does not; `1` reads them (a missing `rapidocr` is an error naming "
                "the package); `0` never (nothing is written). Turned on over a tagged collection, `tagscope tag` "
                "runs a text job that reads the photos without a reading, no re-embedding (docs/operations.md)")

    # -- derived paths ----------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'tagscope.sqlite').resolve()}"

    @property
    def index_dir(self) -> Path:
        return Path(self.index_folder).expanduser() if self.index_folder else self.home / "index"

    @property
    def thumbs_dir(self) -> Path:
        return self.home / "thumbs"

    @property
    def embedded_broker_url(self) -> str:
        """The broker ``TAGSCOPE_BROKER_URL=embedded`` names (``tagscope worker`` then needs no server):
        kombu's SQLAlchemy transport on SQLite."""
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
    "web_processes": "TAGSCOPE_WEB_PROCESSES",
    "runtime": "TAGSCOPE_RUNTIME",
    "compile": "TAGSCOPE_COMPILE",
    "gpu_decode": "TAGSCOPE_GPU_DECODE",
    "duplicate_threshold": "TAGSCOPE_DUPLICATE_THRESHOLD",
    "index_folder": "TAGSCOPE_INDEX_FOLDER",
    "keep_index": "TAGSCOPE_KEEP_INDEX",
    "text_batch": "TAGSCOPE_TEXT_BATCH",
    "thumb_cache_mb": "TAGSCOPE_THUMB_CACHE_MB",
    "xmp_root": "TAGSCOPE_XMP_ROOT",
    "ocr": "TAGSCOPE_OCR",
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
        if name == "runtime":
            if value not in RUNTIMES:
                raise TagscopeError(f"bad value {value!r} for runtime in {source}: use one of {', '.join(RUNTIMES)}")
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
        if name == "duplicate_threshold":
            if value in ("", None):
                return None
            similarity = float(value)
            if not MIN_DUPLICATE_THRESHOLD <= similarity <= 1.0:
                raise TagscopeError(f"bad value {value!r} for duplicate_threshold in {source}: use a cosine "
                                    f"similarity of at least {MIN_DUPLICATE_THRESHOLD} and at most 1, e.g. 0.95")
            return similarity
        if name == "xmp_root":
            root = " ".join(str(value).split())
            if not root or "|" in root or "/" in root or len(root) > 200:
                raise TagscopeError(f"bad value {value!r} for xmp_root in {source}: use a keyword name of at most "
                                    "200 characters without | or /, e.g. Tagscope")
            return root
        if name == "ocr":
            return _ocr_mode(value, source)
        if name in ("compile", "keep_index"):
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
                                    "web_threads", "web_processes", "text_batch")
                            and out == 0):
                raise ValueError
            return out
        if kind == "float | None":
            return None if value in ("", None) else float(value)
        return str(value)
    except (TypeError, ValueError):
        raise TagscopeError(f"bad value {value!r} for {name} in {source}: expected a positive {kind}") from None


def _ocr_mode(value: Any, source: str) -> str:
    """``auto``, ``1`` or ``0`` from any spelling of them (true/false, on/off, a TOML boolean)."""
    mode = ("1" if value else "0") if isinstance(value, bool) else str(value).lower()
    mode = {"true": "1", "on": "1", "false": "0", "off": "0"}.get(mode, mode)
    if mode not in OCR_MODES:
        raise TagscopeError(f"bad value {value!r} for ocr in {source}: use auto, 1 or 0")
    return mode


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
