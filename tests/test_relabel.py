"""New labels without re-reading photos: ``labels add``/``import``/``remove`` score from the
embedding store and store what a full re-tag stores, with the photo folder gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.schema import Image, Label, Tag
from migrations import get_database
from mkt.bundle import load_bundle, save_bundle
from mkt.factory import SYNTHETIC_BUNDLE

from .commands import run_cli
from .photos import photos_subset


def stored_tags(url: str) -> dict[str, dict[str, float]]:
    with get_database(url).session() as s:
        rows = s.execute(select(Image.path, Label.name, Tag.score).join(Tag, Tag.image_id == Image.id)
                         .join(Label, Label.id == Tag.label_id)).all()
    out: dict[str, dict[str, float]] = {}
    for path, label, score in rows:
        out.setdefault(Path(path).name, {})[label] = score
    return out


def assert_same_tags(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> None:
    assert a.keys() == b.keys()
    for image in a:
        assert a[image].keys() == b[image].keys(), image
        for label, score in a[image].items():
            assert score == pytest.approx(b[image][label], abs=1e-5), (image, label)


def two_stream_bundle(path: Path) -> str:
    """The bundled CLIP with MKT's local stream switched on: its scores need patch features."""
    bundle = load_bundle(SYNTHETIC_BUNDLE)
    bundle.kind, bundle.head = "mkt", {"local_top_k": 2, "local_weight": 0.5}
    save_bundle(bundle, path)
    return f"mkt:{path}"


@pytest.mark.parametrize("home_env, local_stream", [("sqlite", False), ("sqlite", True), ("postgresql", False)],
                         ids=["sqlite-clip", "sqlite-two-stream", "postgresql-clip"], indirect=["home_env"])
def test_labels_changed_with_the_photos_offline_store_what_a_retag_stores(home_env, synthetic_photos, tmp_path,
                                                                         local_stream):
    home, env, url = home_env
    if local_stream:
        env = {**env, "TAGSCOPE_MODEL": two_stream_bundle(tmp_path / "mkt.pt")}
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 48)
    run_cli("tag", str(photos), "--top-n", "8", home=home, **env)
    before = stored_tags(url)
    photos.rename(tmp_path / "offline")  # the folder is unplugged: nothing may read a photo
    out = run_cli("labels", "add", "crimson blob", "azure shape", "red circle", home=home, TAGSCOPE_TOP_N="8",
                  **env)
    assert "added 2 label(s), 1 already present; scored for 48 tagged images" in out.stdout
    (tmp_path / "more.txt").write_text("# more\nshiny star\n")
    run_cli("labels", "import", str(tmp_path / "more.txt"), home=home, TAGSCOPE_TOP_N="8", **env)
    removed = sorted({label for tags in before.values() for label in tags})[:3]
    out = run_cli("labels", "remove", *removed, "no such label", home=home, TAGSCOPE_TOP_N="8", **env)
    assert out.stdout.startswith("removed 3 label(s), 1 not in the vocabulary")
    relabelled = stored_tags(url)
    assert relabelled != before and all(len(tags) == 8 for tags in relabelled.values())
    assert not {label for tags in relabelled.values() for label in tags} & set(removed)
    (tmp_path / "offline").rename(photos)
    run_cli("tag", str(photos), "--retag", "--top-n", "8", home=home, **env)
    assert_same_tags(relabelled, stored_tags(url))


def test_labels_added_before_anything_is_tagged_score_nothing(tmp_path):
    out = run_cli("labels", "add", "red circle", home=tmp_path / "home")
    assert out.stdout.strip() == "added 1 label(s), 0 already present"


@pytest.mark.worker
@pytest.mark.slow
def test_scoring_refuses_a_model_that_changed_since_tagging(tmp_path, synthetic_photos):
    bundle = tmp_path / "b.pt"
    shutil.copy(SYNTHETIC_BUNDLE, bundle)
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 8)
    run_cli("tag", str(photos), "--model", f"mkt:{bundle}", home=tmp_path / "home")
    two_stream_bundle(bundle)  # same path, another version
    proc = run_cli("labels", "add", "shiny star", home=tmp_path / "home", check=False)
    assert proc.returncode == 2 and "re-tag with `tagscope tag PATH --retag`" in proc.stderr
