"""``auto`` cannot fail (mkt.runtime.fallback): a runtime whose export or load fails -- its package
unimportable, a cache folder that cannot be written -- leaves the image tower on PyTorch with a
one-line warning, and the stored model version is PyTorch's; a runtime named explicitly fails
with a one-line error instead of a traceback. Real failures in real subprocesses, no mocks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mkt.factory import get_model
from mkt.synthetic import generate

from . import ROOT
from .commands import run_cli

pytestmark = pytest.mark.slow  # a new interpreter per run: torch imported each time

BROKEN = ("onnxruntime", "openvino")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fallback-photos")
    generate(folder, n=12, seed=11)
    return folder


def broken_packages(tmp_path: Path) -> str:
    """A PYTHONPATH whose first folder shadows ONNX Runtime and OpenVINO with packages that are
    found but raise ImportError when imported (what a half-installed wheel does)."""
    shadow = tmp_path / "shadow"
    for name in BROKEN:
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(
            f"raise ImportError('libbroken.so.1: cannot open shared object file ({name} test shadow)')\n")
    return os.pathsep.join([str(shadow), str(ROOT)])


def breakage_env(breakage: str, tmp_path: Path) -> dict[str, str]:
    """The environment that breaks every runtime other than PyTorch in the way ``breakage`` says."""
    if breakage == "cache is a file":
        cache = tmp_path / "cache-file"
        cache.write_text("not a folder\n")
        return {"TAGSCOPE_RUNTIME_CACHE": str(cache)}
    return {"PYTHONPATH": broken_packages(tmp_path), "TAGSCOPE_RUNTIME_CACHE": str(tmp_path / "cache")}


def stored_versions(home: Path) -> set[str]:
    return {m["version"] for m in json.loads(run_cli("models", "--json", home=home).stdout)["models"]}


# A cache that cannot be written: a file where the folder should be (a read-only folder is the same
# failure, and root, as the suite runs in CI, writes into one anyway, so it would only ever skip here).
@pytest.mark.parametrize("breakage", ["cache is a file", "packages unimportable"])
def test_auto_falls_back_to_pytorch_with_one_warning(breakage, photos, tmp_path):
    home = tmp_path / "home"
    env = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_DEVICE": "cpu", "TAGSCOPE_RUNTIME": "auto",
           **breakage_env(breakage, tmp_path)}
    out = run_cli("tag", str(photos), home=home, process=True, check=False, **env)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert "12 processed this run" in out.stdout, out.stdout
    warnings = [line for line in out.stderr.splitlines() if "PyTorch" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING "), out.stderr
    assert "runtime auto" in warnings[0] and "TAGSCOPE_RUNTIME=torch" in warnings[0], warnings[0]
    torch_version = get_model("synthetic").version
    assert torch_version in warnings[0]  # the version says PyTorch made the vectors
    assert stored_versions(home) == {torch_version}
    # search on the same broken runtimes: the text tower falls back too (the same embeddings)
    found = run_cli("search", "red circle", "--json", "-k", "5", home=home, process=True, check=False, **env)
    assert found.returncode == 0 and "Traceback" not in found.stderr, found.stderr
    assert len(json.loads(found.stdout)["results"]) == 5


@pytest.mark.parametrize("breakage", ["cache is a file", "packages unimportable"])
@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_a_named_runtime_that_fails_is_one_line(runtime, breakage, photos, tmp_path):
    home = tmp_path / "home"
    out = run_cli("tag", str(photos), "--runtime", runtime, home=home, process=True, check=False,
                  TAGSCOPE_MODEL="synthetic", TAGSCOPE_DEVICE="cpu", **breakage_env(breakage, tmp_path))
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: runtime {runtime} failed"), out.stderr
    assert "--runtime auto" in lines[0] and "--runtime torch" in lines[0], lines[0]
