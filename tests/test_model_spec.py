"""One model spec: parsed once into a canonical value, compared by the model's version id.

Through the real command line, from different working directories, with ``tagscope.toml``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mkt.bundle import load_bundle, save_bundle
from mkt.factory import SYNTHETIC_BUNDLE

from .commands import run_cli
from .photos import read_labels_jsonl


@pytest.fixture
def workdir(tmp_path, synthetic_photos) -> Path:
    """A working directory with a bundle at runs/b.pt and 40 photos."""
    (tmp_path / "runs").mkdir()
    shutil.copy(SYNTHETIC_BUNDLE, tmp_path / "runs" / "b.pt")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in sorted(read_labels_jsonl(synthetic_photos))[:40]:
        shutil.copy(synthetic_photos / name, photos / name)
    return tmp_path


def other_version(path: Path) -> str:
    """Write a bundle of another version (same weights, another head) at ``path``."""
    bundle = load_bundle(SYNTHETIC_BUNDLE)
    bundle.head = {**bundle.head, "retrained": True}
    return save_bundle(bundle, path)


def status(home: Path, cwd: Path) -> dict:
    return json.loads(run_cli("status", "--json", home=home, cwd=cwd).stdout)


def test_relative_mkt_spec_round_trips_between_tag_and_search(workdir, tmp_path_factory):
    home = workdir / "home"
    run_cli("tag", "photos", "--model", "mkt:runs/b.pt", home=home, cwd=workdir)
    assert status(home, workdir)["model"]["spec"] == f"mkt:{workdir}/runs/b.pt"  # stored canonical
    hits = json.loads(run_cli("search", "red circle", "--model", "mkt:runs/b.pt", "--json", home=home,
                              cwd=workdir).stdout)["results"]
    assert len(hits) == 20
    # The same file named from elsewhere, and the same model under another name, are the same version.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(workdir / "runs" / "b.pt", elsewhere / "copy.pt")
    for spec, cwd in [(f"mkt:{workdir}/runs/../runs/b.pt", elsewhere), ("mkt:copy.pt", elsewhere),
                      ("synthetic", elsewhere)]:
        again = json.loads(run_cli("search", "red circle", "--model", spec, "--json", home=home, cwd=cwd).stdout)
        assert again["results"] == hits, spec


def test_the_model_in_tagscope_toml_is_used_by_tag_and_search(workdir):
    home = workdir / "home"
    (workdir / "tagscope.toml").write_text('model = "mkt:runs/b.pt"\n')
    run_cli("tag", "photos", home=home, cwd=workdir)  # the default model would fail offline here
    assert status(home, workdir)["model"]["spec"] == f"mkt:{workdir}/runs/b.pt"
    assert run_cli("search", "red circle", home=home, cwd=workdir).stdout.count("\n") == 20
    version = other_version(workdir / "runs" / "c.pt")
    (workdir / "tagscope.toml").write_text('model = "mkt:runs/c.pt"\n')
    refused = run_cli("search", "red circle", home=home, cwd=workdir, check=False)
    assert refused.returncode == 2 and version in refused.stderr
    assert f"pass --model mkt:{workdir}/runs/b.pt" in refused.stderr
    # A flag beats the file; the environment too.
    assert run_cli("search", "red", "--model", "mkt:runs/b.pt", home=home, cwd=workdir).returncode == 0
    assert run_cli("search", "red", home=home, cwd=workdir, TAGSCOPE_MODEL="synthetic").returncode == 0


def test_retagging_with_a_spec_spelled_otherwise_tags_nothing_again(workdir):
    home = workdir / "home"
    run_cli("tag", "photos", "--model", "mkt:runs/b.pt", home=home, cwd=workdir)
    again = run_cli("tag", str(workdir / "photos"), "--model", f"mkt:{workdir}/runs/b.pt", home=home, cwd=workdir)
    assert "0 processed this run" in again.stdout
