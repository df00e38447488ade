"""One factory for tag models, in the open_clip style: a spec string in, a :class:`TagModel` out.

Model specs:

- ``open_clip:ARCH:PRETRAINED`` -- an open_clip architecture with pretrained weights, by tag
  (downloaded once into the Hugging Face cache, e.g. ``open_clip:ViT-B-32:laion2b_s34b_b79k``)
  or a local weights file (``open_clip:ViT-B-32:/models/vit-b-32.safetensors``);
- ``open_clip:ARCH`` -- random weights (benchmarks only; warns);
- ``mkt:PATH`` -- a checkpoint bundle (see :mod:`mkt.bundle`), e.g. from ``tagscope train``;
- ``synthetic`` -- the tiny model bundled with the package, pretrained on the synthetic world
  (:mod:`mkt.synthetic`); for demos and tests, it knows nothing about real photos.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import open_clip
import torch

from core.errors import TagscopeError
from core.modelspec import ModelSpec, check_offline_weights, hub_offline, offline_error, parse_spec
from mkt.bundle import Bundle, load_bundle
from mkt.calibration import Constants
from mkt.tagmodel import DEFAULT_TEMPLATE, TagModel
from mkt.weights import building, file_digest, skipped_init

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
ASSETS = Path(__file__).parent / "assets"
SYNTHETIC_BUNDLE = ASSETS / "synthetic.pt"  # `synthetic`: the world's tiny CLIP
SYNTHETIC_MKT_BUNDLE = ASSETS / "synthetic-mkt.pt"  # `synthetic-mkt`: MKT trained from it (mkt/training/demo_model.py)
BUILTIN_BUNDLES = {"synthetic": SYNTHETIC_BUNDLE, "synthetic-mkt": SYNTHETIC_MKT_BUNDLE}


def bundle_path(spec: str | ModelSpec) -> Path | None:
    """The bundle file a spec loads (shipped or ``mkt:PATH``), or None for open_clip models."""
    parsed = parse_spec(spec)
    if parsed.kind in BUILTIN_BUNDLES:
        return BUILTIN_BUNDLES[parsed.kind]
    return Path(parsed.path).expanduser() if parsed.kind == "mkt" else None

# Architectures are data: register ours with open_clip's own config registry.
open_clip.add_model_config(MODEL_CONFIG_DIR)


def create_tag_model(spec: str | ModelSpec, device: str | torch.device = "cpu") -> TagModel:
    """Build the tag model a spec names, on ``device``, in eval mode."""
    parsed = parse_spec(spec)
    path = bundle_path(parsed)
    model = model_from_bundle(load_bundle(path), spec=str(parsed)) if path else _open_clip_model(parsed)
    return model.to(device)


_models: dict[tuple[str, str], tuple[tuple[int, int] | None, TagModel]] = {}


def get_model(spec: str | ModelSpec, device: str | torch.device = "cpu") -> TagModel:
    """:func:`create_tag_model`, once per process and (spec, device): Celery workers and the web
    server keep the model between tasks and requests. A bundle file replaced at the same path
    (``mkt:PATH``) is loaded again, so a long-lived worker sees the version now there. The image
    tower on another runtime than PyTorch: :func:`mkt.runtime.factory.model_on`."""
    parsed = parse_spec(spec)
    key = (str(parsed), str(device))
    stamp = _file_stamp(parsed.path) if parsed.kind == "mkt" else None
    cached = _models.get(key)
    if cached is None or cached[0] != stamp:
        _models[key] = (stamp, create_tag_model(parsed, device=device))
    return _models[key][1]


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    try:
        st = Path(path).stat() if path else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


@contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """open_clip logs routine steps (and each failed download try) on the root logger as
    warnings; Tagscope reports what matters itself, once."""
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def register_arch(arch: str, config: dict) -> None:
    """Make ``arch`` known to open_clip with exactly ``config`` (bundles carry their config)."""
    if arch in open_clip.list_models() and open_clip.get_model_config(arch) == config:
        return
    folder = Path(tempfile.mkdtemp(prefix="tagscope-arch-"))
    (folder / f"{arch}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


def model_from_bundle(bundle: Bundle, spec: str) -> TagModel:
    """Instantiate a bundle through open_clip's factory and load its weights."""
    register_arch(bundle.arch, bundle.model_config)
    # "no pretrained weights loaded": the bundle's come next, every one (else the error below)
    with _quiet_open_clip(), skipped_init():
        clip, _, preprocess = open_clip.create_model_and_transforms(bundle.arch, pretrained=None)
    missing, unexpected = clip.load_state_dict(bundle.state_dict, strict=False)
    if missing or unexpected:
        raise TagscopeError(f"bundle for {spec} does not match architecture {bundle.arch} "
                            f"(missing {len(missing)}, unexpected {len(unexpected)} weights); re-export it")
    prompt_encoder = None
    if bundle.prompt.get("context") is not None:
        from mkt.prompt import prompt_encoder_from_bundle  # MKT stage 2 (learned prompt context)

        prompt_encoder = prompt_encoder_from_bundle(clip, bundle)
    return TagModel(
        clip,
        open_clip.get_tokenizer(bundle.arch),
        preprocess,
        version=bundle.version,
        spec=spec,
        template=bundle.prompt.get("template", DEFAULT_TEMPLATE),
        prompt_encoder=prompt_encoder,
        local_top_k=int(bundle.head.get("local_top_k", 0)),
        local_weight=float(bundle.head.get("local_weight", 1.0)),
        labels=bundle.labels,
        label_families=bundle.label_families,
        kind=bundle.kind,
        relevance=Constants.of(bundle.meta),
        suggested_queries=[q["text"] for q in (bundle.meta or {}).get("demo_queries") or []],
        tag_calibration=(bundle.meta or {}).get("tags"),
    )


def _open_clip_model(spec: ModelSpec) -> TagModel:
    if spec.arch not in open_clip.list_models():
        raise TagscopeError(f"unknown open_clip architecture {spec.arch!r}; "
                            "`python -c 'import open_clip; print(open_clip.list_models())'` lists them")
    check_text_tower(spec.arch)
    if not spec.pretrained:
        warnings.warn(f"open_clip:{spec.arch} has random weights: its tags are meaningless "
                      "(use it for benchmarks only)", stacklevel=3)
        with building():
            torch.manual_seed(0)  # deterministic random weights, so the version id is stable
            clip, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=None)
        version_key = f"{spec.arch}|random-seed0"
    else:
        weights = Path(spec.pretrained).expanduser()
        if weights.is_file():
            version_key = f"{spec.arch}|file|{file_digest(weights)}"
            pretrained = str(weights)
        elif spec.pretrained in open_clip.list_pretrained_tags_by_model(spec.arch):
            version_key = f"{spec.arch}|{spec.pretrained}"
            pretrained = spec.pretrained
            # No weights cached and no hub answering within seconds: fail now (search, serve and
            # workers too), not after the hub client's retries (about a minute).
            check_offline_weights(spec, probe_network=True)
        else:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(spec.arch)) or "none"
            raise TagscopeError(f"{spec.pretrained!r} is neither a file nor a pretrained tag of {spec.arch} "
                                f"(tags: {tags})")
        try:
            # open_clip loads a whole checkpoint strictly: every initial value would be overwritten
            with _quiet_open_clip(), skipped_init():
                clip, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=pretrained,
                                                                            require_pretrained=True)
        except Exception as exc:  # hub, network and file errors come in many types
            raise offline_error(spec, "HF_HUB_OFFLINE is set" if hub_offline() else type(exc).__name__) from exc
    version = hashlib.sha256(f"open_clip|{version_key}|{DEFAULT_TEMPLATE}".encode()).hexdigest()[:12]
    return TagModel(clip, open_clip.get_tokenizer(spec.arch), preprocess, version=version, spec=str(spec))


def check_text_tower(arch: str) -> None:
    """Multilingual open_clip models (``xlm-roberta-base-ViT-B-32``, ``nllb-clip-base`` ...) encode
    text with a Hugging Face model: it needs ``transformers`` and its tokenizer and config, which
    download from the hub on first use. Fail in one line, at once, when either is missing."""
    config = open_clip.get_model_config(arch) or {}
    hf_name = (config.get("text_cfg") or {}).get("hf_model_name") or (config.get("text_cfg") or {}).get(
        "hf_tokenizer_name")
    if not hf_name:
        return
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise TagscopeError(f"{arch} encodes text with the Hugging Face model {hf_name}: install transformers "
                            "(pip install 'tagscope[multilingual]')") from None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hf_name, "config.json")
    if not isinstance(cached, str) and hub_offline():
        raise TagscopeError(f"the tokenizer and text config of {hf_name} ({arch}'s text tower) are not cached and "
                            "HF_HUB_OFFLINE is set: run once with internet and HF_HUB_OFFLINE unset")
