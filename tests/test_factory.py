"""Every model spec kind builds a tag model with the same interface (parametrised, as timm does)."""

import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from core.errors import TagscopeError
from core.modelspec import parse_spec
from mkt.bundle import BundleError, load_bundle, save_bundle
from mkt.factory import SYNTHETIC_BUNDLE, create_tag_model

from . import ROOT
from .commands import run_cli, tagscope_env


@pytest.fixture(scope="module")
def mkt_bundle_path(tmp_path_factory):
    """An MKT-kind bundle (two-stream head) made from the bundled synthetic weights."""
    b = load_bundle(SYNTHETIC_BUNDLE)
    b.kind, b.head, b.meta = "mkt", {"local_top_k": 3}, {"note": "test bundle"}
    path = tmp_path_factory.mktemp("bundles") / "mkt-test.pt"
    save_bundle(b, path)
    return path


SPECS = ["synthetic", "open_clip:tagscope-tiny", "mkt"]


@pytest.fixture(params=SPECS)
def model(request, mkt_bundle_path):
    spec = f"mkt:{mkt_bundle_path}" if request.param == "mkt" else request.param
    if spec.startswith("open_clip:") and spec.count(":") == 1:
        with pytest.warns(UserWarning, match="random weights"):
            return create_tag_model(spec)
    return create_tag_model(spec)


def test_every_spec_gives_the_tag_model_interface(model):
    image = Image.new("RGB", (100, 80), (200, 30, 30))
    pixels = torch.stack([model.preprocess(image)] * 2)
    with torch.inference_mode():
        emb = model.encode_images(pixels)
        labels = model.encode_labels(["red circle", "a label nobody trained on"])
        scores = model.score(emb, labels)
    d = model.embed_dim
    assert emb.global_.shape == (2, d) and labels.shape == (2, d) and scores.shape == (2, 2)
    assert emb.patches is not None and emb.patches.shape[0] == 2 and emb.patches.shape[2] == d
    assert torch.allclose(emb.global_.norm(dim=-1), torch.ones(2), atol=1e-4)
    assert scores.abs().max() <= 1.0 + 1e-4
    assert len(model.version) == 12


def test_score_does_not_depend_on_the_other_labels(model):
    pixels = model.preprocess(Image.new("RGB", (64, 64), (20, 20, 220)))[None]
    with torch.inference_mode():
        emb = model.encode_images(pixels)
        one = model.score(emb, model.encode_labels(["blue star"]))
        many = model.score(emb, model.encode_labels(["blue star", "red circle", "striped background"]))
    assert torch.allclose(one[:, 0], many[:, 0], atol=1e-5)


def test_version_id_changes_with_the_weights(mkt_bundle_path, tmp_path):
    b = load_bundle(mkt_bundle_path)
    first = b.version
    b.state_dict = {k: (v + 1 if k == "logit_scale" else v) for k, v in b.state_dict.items()}
    assert save_bundle(b, tmp_path / "changed.pt") != first


@pytest.mark.parametrize("spec", ["open_clip", "mkt:", "clip:ViT-B-32", ""])
def test_bad_spec_names_the_accepted_forms(spec):
    with pytest.raises(TagscopeError, match="open_clip:ARCH:PRETRAINED"):
        parse_spec(spec)


def test_missing_or_corrupt_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="no bundle file"):
        create_tag_model(f"mkt:{tmp_path}/missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BundleError, match="not a readable Tagscope bundle"):
        create_tag_model(f"mkt:{tmp_path}/junk.pt")


@pytest.mark.parametrize("offline", ["1", ""])
def test_unknown_architecture_and_tag_are_clear_errors(monkeypatch, tmp_path, offline):
    """What is wrong is named first, online or offline (HF_HUB_OFFLINE=1 in the user's shell
    and nothing cached): an unknown architecture or tag, not a weights question."""
    for name, value in {"HF_HUB_OFFLINE": offline, "HF_HOME": str(tmp_path / "hf"),
                        "XDG_CACHE_HOME": str(tmp_path / "xdg")}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(TagscopeError, match="unknown open_clip architecture 'ViT-Q-99'"):
        create_tag_model("open_clip:ViT-Q-99:laion2b")
    with pytest.raises(TagscopeError, match="neither a file nor a pretrained tag"):
        create_tag_model("open_clip:ViT-B-32:not_a_tag")


@pytest.mark.parametrize("command", ["tag", "search"])
def test_the_command_line_names_an_unknown_architecture_first_when_offline(tmp_path, command):
    """The command line's early weights check (before torch is imported) leaves an architecture
    open_clip does not ship to the loader, which names it."""
    (tmp_path / "photos").mkdir()
    target = str(tmp_path / "photos") if command == "tag" else "red circle"
    proc = run_cli(command, target, "--model", "open_clip:ViT-Q-99:laion2b", home=tmp_path / "h", check=False,
                   HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "unknown open_clip architecture 'ViT-Q-99'" in proc.stderr and "cannot load weights" not in proc.stderr


# `python -m tagscope ARGS`, then whether the process imported torch (on stdout's last line): a
# check made before the imports fails fast, whatever the machine's speed.
# (at exit: the command ends its process itself, running atexit handlers, tagscope.common.leave).
TAGSCOPE_THEN_IMPORTS = ("import atexit, runpy, sys\n"
                         "atexit.register(lambda: print('torch imported' if 'torch' in sys.modules\n"
                         "                              else 'torch not imported', flush=True))\n"
                         "runpy.run_module('tagscope', run_name='__main__', alter_sys=True)\n")


def tag_with_uncached_weights(tmp_path, command: str = "tag", **env: str):
    """``tagscope tag`` of one photo (or ``search``) in a process, with pretrained weights nothing
    has cached: (process, whether it imported torch)."""
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    Image.new("RGB", (8, 8)).save(photos / "a.png")
    target = str(photos) if command == "tag" else "a red bicycle"
    args = [command, target, "--model", "open_clip:ViT-B-32:laion2b_s34b_b79k"]
    proc = subprocess.run([sys.executable, "-c", TAGSCOPE_THEN_IMPORTS, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=tagscope_env(tmp_path / "h", **{
                              "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"),
                              "XDG_CACHE_HOME": str(tmp_path / "xdg"), **env}))
    imported = proc.stdout.strip().splitlines()[-1]
    assert imported in ("torch imported", "torch not imported"), (proc.stdout, proc.stderr)
    return proc, imported == "torch imported"


def test_offline_pretrained_weights_fail_fast_with_the_fix(tmp_path):
    """With HF_HUB_OFFLINE=1 and no cached weights: one line, naming the fix, before torch is imported."""
    proc, imported_torch = tag_with_uncached_weights(tmp_path, HF_HUB_OFFLINE="1")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "HF_HUB_OFFLINE" in proc.stderr and "local file" in proc.stderr
    assert not imported_torch  # the check runs before the seconds of imports


def test_offline_check_leaves_cached_weights_to_the_real_loader(tmp_path, monkeypatch):
    from core.modelspec import check_offline_weights

    spec = parse_spec("open_clip:ViT-B-32:laion2b_s34b_b79k")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(TagscopeError, match="HF_HUB_OFFLINE"):
        check_offline_weights(spec)
    snapshot = tmp_path / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    check_offline_weights(spec)  # something is cached: no early verdict
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    check_offline_weights(parse_spec("open_clip:ViT-B-32:laion2b_s34b_b79k"))


def test_local_weights_file_loads(tmp_path):
    """The real loading path for a file a user downloaded: open_clip:ARCH:/path/to/weights."""
    torch.manual_seed(1)
    ref = create_tag_model("synthetic")
    weights = tmp_path / "tiny.pt"
    torch.save(ref.clip.state_dict(), weights)
    model = create_tag_model(f"open_clip:tagscope-tiny:{weights}")
    pixels = ref.preprocess(Image.new("RGB", (64, 64), (10, 200, 10)))[None]
    with torch.inference_mode():
        a = model.encode_images(pixels).global_
        b = ref.encode_images(pixels).global_
    assert torch.allclose(a, b, atol=1e-5)
    assert model.version != ref.version  # a different template and origin: a different model version


@pytest.mark.parametrize("command", ["tag", "search"])
def test_no_network_fails_fast_even_without_hf_hub_offline(tmp_path, command):
    """No HF_HUB_OFFLINE, no cached weights, a hub that does not answer: one line, from the probe
    made before torch is imported (not after the hub client's retries)."""
    proc, imported_torch = tag_with_uncached_weights(tmp_path, command, HF_HUB_OFFLINE="",
                                                     XDG_CACHE_HOME=str(tmp_path / "xdg"),
                                                     HF_ENDPOINT="http://127.0.0.1:9", HTTPS_PROXY="", https_proxy="")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "127.0.0.1:9 does not answer" in proc.stderr and "local file" in proc.stderr
    assert not imported_torch


def test_a_worker_or_server_loading_uncached_weights_without_network_fails_fast(tmp_path, monkeypatch):
    """The model loader itself probes the hub (search, serve and workers load through it): the
    probe's own one-line answer, not the hub client's error after its retries."""
    for name, value in {"HF_HUB_OFFLINE": "", "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path / "x"),
                        "HF_ENDPOINT": "http://127.0.0.1:9", "HTTPS_PROXY": "", "https_proxy": ""}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(TagscopeError, match="127.0.0.1:9 does not answer") as info:
        create_tag_model("open_clip:ViT-B-32:laion2b_s34b_b79k")
    assert info.value.__cause__ is None  # raised by the probe, not from a failed download


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("true", True), ("YES", True), ("on", True),
                                                ("0", False), ("false", False), ("no", False), ("", False)])
def test_offline_mode_is_read_once_as_the_hub_client_reads_it(monkeypatch, value, offline):
    """One place decides (core.modelspec.hub_offline), with huggingface_hub's own truth table:
    HF_HUB_OFFLINE=false means online for the early check too."""
    from core.modelspec import check_offline_weights, hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert hub_offline() is offline
    spec = parse_spec("open_clip:ViT-B-32:laion2b_s34b_b79k")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache")
    if offline:
        with pytest.raises(TagscopeError, match="HF_HUB_OFFLINE is set"):
            check_offline_weights(spec)
    else:
        check_offline_weights(spec)  # no probe asked: online means the real loader decides


def test_weights_loaded_strictly_skip_the_random_init_and_a_missing_one_is_an_error(tmp_path):
    """A pretrained build skips initialising what the load overwrites (mkt.weights); every
    weight must then come from the file, and the fillers are themselves again afterwards."""
    ref = create_tag_model("synthetic")
    state = ref.clip.state_dict()
    weights = tmp_path / "tiny.pt"
    torch.save(state, weights)
    model = create_tag_model(f"open_clip:tagscope-tiny:{weights}")
    loaded = model.clip.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    partial = tmp_path / "partial.pt"
    torch.save({k: v for k, v in state.items() if k != "visual.proj"}, partial)
    with pytest.raises(TagscopeError, match="cannot load weights"):
        create_tag_model(f"open_clip:tagscope-tiny:{partial}")
    assert torch.zeros(64).normal_().std() > 0.5 and torch.nn.Linear(8, 8).weight.abs().sum() > 0


def test_a_weights_files_digest_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib

    from mkt import weights as w

    monkeypatch.setenv("TAGSCOPE_RUNTIME_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 1000)
    assert w.file_digest(path) == hashlib.sha256(b"a" * 1000).hexdigest()[:16]
    hashed = []
    real_sha = hashlib.sha256
    real_file_sha = w.file_sha256
    monkeypatch.setattr(w, "file_sha256", lambda *a: hashed.append(1) or real_file_sha(*a))
    assert w.file_digest(path) == real_sha(b"a" * 1000).hexdigest()[:16] and not hashed  # remembered
    before = path.stat()
    path.write_bytes(b"b" * 1000)  # same size, new bytes, a later mtime
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert w.file_digest(path) == real_sha(b"b" * 1000).hexdigest()[:16] and hashed == [1]
