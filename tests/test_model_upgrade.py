"""A model upgrade builds the new version beside the active one: searches during it never fail
and answer from the old version until the new one covers the collection; then search switches,
and a user can list both versions and switch back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.schema import Embedding, ModelVersion
from core.settings import load_settings
from indexer.search.searcher import Searcher
from migrations import get_database

from . import ROOT
from .bundles import two_stream_bundle
from .commands import run_cli, tagscope_env
from .photos import photos_subset
from .servers import start_worker, stop_process

N = 150
FIRST = 40  # photos in the folder the upgrade covers first


def models_json(home, **env) -> list[dict]:
    return json.loads(run_cli("models", "--json", home=home, **env).stdout)["models"]


def two_folders(synthetic_photos: Path, photos: Path) -> tuple[Path, Path]:
    """(photos, photos/first): N photos of the synthetic collection, FIRST of them in photos/first,
    the rest in photos/rest."""
    first = photos_subset(synthetic_photos, photos / "first", N)
    (photos / "rest").mkdir()
    for path in sorted(first.iterdir())[FIRST:]:
        path.rename(photos / "rest" / path.name)
    return photos, first


def switch_back(home: Path, searcher: Searcher, old: str) -> None:
    """``tagscope models use OLD``: search serves the old version again, with its tags."""
    out = run_cli("models", "use", old[:12], home=home)
    assert f"search now serves synthetic ({old})" in out.stdout
    searcher.search("red circle", 10)
    assert searcher.model.version == old
    record = json.loads(run_cli("show", "1", "--json", home=home).stdout)
    assert record["tags"] and {t["model_version"] for t in record["tags"]} == {old}


@pytest.mark.worker
@pytest.mark.slow
def test_searches_during_an_upgrade_answer_from_the_old_version_until_the_switch(synthetic_photos, tmp_path):
    """The upgrade first covers one folder and stops there (a state that holds however fast this
    machine tags: no count of samples taken in a race), then the rest runs in another process
    while this one searches."""
    from mkt.bundle import load_bundle, save_bundle
    from mkt.factory import SYNTHETIC_BUNDLE

    home = tmp_path / "home"
    url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    photos, first = two_folders(synthetic_photos, tmp_path / "photos")
    run_cli("tag", str(photos), home=home, TAGSCOPE_MODEL="synthetic")
    [old] = models_json(home)
    assert old["active"] and old["covers"] and old["embeddings"] == N
    newer = load_bundle(SYNTHETIC_BUNDLE)  # the same weights re-saved with other metadata: another version
    newer.head = {**newer.head, "upgrade": "test"}
    save_bundle(newer, tmp_path / "newer.pt")
    db = get_database(url)
    searcher = Searcher(load_settings(environ={}, home=str(home), database_url=url, loader_workers=0))
    assert searcher.search("red circle", 10) and searcher.model.version == old["version"]

    def new_coverage() -> int:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Embedding).join(
                ModelVersion, ModelVersion.id == Embedding.model_version_id)
                .where(ModelVersion.version != old["version"])) or 0)

    newer_spec = f"mkt:{tmp_path / 'newer.pt'}"
    run_cli("tag", str(first), "--model", newer_spec, home=home)  # the new version covers one folder
    partial = [(m["active"], m["covers"], m["embeddings"]) for m in models_json(home) if m["version"] != old["version"]]
    assert partial == [(False, False, FIRST)]
    for _ in range(3):  # search answers from the old version while the new one covers part of the collection
        assert len(searcher.search("red circle", 10)) == 10
        assert searcher.model.version == old["version"] and new_coverage() == FIRST
    upgrade = subprocess.Popen([sys.executable, "-m", "tagscope", "tag", str(photos), "--model", newer_spec,
                                "--batch-size", "2", "--loader-workers", "0"],
                               cwd=ROOT, env=tagscope_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    served = []  # (version that answered, new version's coverage right after)
    while upgrade.poll() is None:
        hits = searcher.search("red circle", 10)  # never fails, never comes back short
        assert len(hits) == 10
        served.append((searcher.model.version, new_coverage()))
        time.sleep(0.05)
    output = upgrade.communicate()[0]
    assert upgrade.returncode == 0, output
    assert all(v == old["version"] for v, c in served if c < N), served
    assert all(c == N for v, c in served if v != old["version"])  # the new one only once it covers all
    searcher.search("red circle", 10)
    versions = {m["version"]: m for m in models_json(home)}
    [new] = [m for m in versions.values() if m["version"] != old["version"]]
    assert searcher.model.version == new["version"] and new["active"] and not versions[old["version"]]["active"]
    assert new["covers"] and versions[old["version"]]["covers"]  # both kept: the user can switch back
    switch_back(home, searcher, old["version"])
    refused = run_cli("models", "remove", old["version"], home=home, check=False)
    assert refused.returncode == 2 and "active" in refused.stderr
    run_cli("models", "remove", new["version"][:12], home=home)
    assert [m["version"] for m in models_json(home) if m["embeddings"]] == [old["version"]]
    again = run_cli("tag", str(photos), home=home, TAGSCOPE_MODEL="synthetic").stdout
    assert "0 processed this run" in again  # images the removed version had tagged last are the old one's
    assert not list((home / "index").glob(f"{new['version']}.*"))


@pytest.mark.worker
@pytest.mark.slow
def test_an_upgrade_tagged_by_a_worker_that_keeps_no_index_switches_search(home_env, synthetic_photos, tmp_path):
    """docs/deploy.md's workers keep no index (TAGSCOPE_KEEP_INDEX=0) and close the jobs they
    finish: the switch to the new version is the close's, whoever closes (issue 30, point 5)."""
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 40)
    run_cli("tag", str(photos), home=home, **env)  # model v1, in this process
    [old] = models_json(home, **env)
    v2 = two_stream_bundle(tmp_path / "two-stream.pt")  # another version, scoring otherwise (a local stream)
    plain = {k: v for k, v in env.items() if k != "TAGSCOPE_MODEL"}  # search follows the active version
    queued = {**plain, "TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_TASK_SIZE": "20"}
    worker = start_worker(home, {**queued, "TAGSCOPE_KEEP_INDEX": "0"}, "--loader-workers", "0")
    try:
        out = run_cli("tag", str(photos), "--model", f"mkt:{v2}", home=home, **queued)
        assert "queued 2 task(s)" in out.stderr, out.stderr
    finally:
        stop_process(worker)
    log = (home / "worker.log").read_text()
    assert log.count("succeeded") >= 2, log[-3000:]
    versions = {m["spec"]: m for m in models_json(home, **plain)}
    assert versions[f"mkt:{v2}"]["active"] and not versions[old["spec"]]["active"], versions
    hits = json.loads(run_cli("search", "red circle", "-k", "10", "--json", home=home, **plain).stdout)["results"]
    served = {name: Searcher(load_settings(environ=plain, home=str(home), database_url=url, model=spec))
              .search("red circle", 10) for name, spec in (("new", f"mkt:{v2}"), ("old", "synthetic"))}
    got = [(h["image_id"], round(h["score"], 5)) for h in hits]
    assert got == [(h.image_id, round(h.score, 5)) for h in served["new"]]
    assert got != [(h.image_id, round(h.score, 5)) for h in served["old"]]
