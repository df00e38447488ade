"""Where each label's rule comes from (tagger/decisions.py): every scored label is decided for a
model version once it is tagged, the same collection gives the same rules, labels added later are
decided as a full re-tag decides them, a new version is decided before it is served, only keyword
leaves are scored, and synonyms join a label's embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.decisions import matching_tags
from core.schema import Image, Label, LabelCutoff, ModelVersion, Tag
from migrations import get_database

from .bundles import two_stream_bundle
from .commands import run_cli
from .photos import photos_subset


def rules_by_name(url: str, spec: str | None = None) -> dict[str, tuple]:
    """label name -> (threshold, slope, source, images) under the version of ``spec`` (the only one
    when None)."""
    with get_database(url).session() as s:
        query = select(ModelVersion.id)
        mv = s.scalar(query if spec is None else query.where(ModelVersion.spec == spec))
        rows = s.execute(select(Label.name, LabelCutoff.threshold, LabelCutoff.slope, LabelCutoff.source,
                                LabelCutoff.images).join(LabelCutoff, LabelCutoff.label_id == Label.id)
                         .where(LabelCutoff.model_version_id == mv)).all()
    return {name: tuple(rest) for name, *rest in rows}


def matching(url: str) -> set[tuple[str, str]]:
    """(photo file, label) of every tag that matches under the only version."""
    with get_database(url).session() as s:
        mv = s.scalar(select(ModelVersion.id))
        decided = matching_tags(mv).add_columns(Tag.label_id).subquery()
        rows = s.execute(select(Image.path, Label.name).join(decided, decided.c.image_id == Image.id)
                         .join(Label, Label.id == decided.c.label_id)).all()
    return {(Path(path).name, name) for path, name in rows}


def assert_same_rules(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert a.keys() == b.keys()
    for name, (threshold, slope, source, images) in a.items():
        other = b[name]
        assert (source, images) == other[2:], name
        assert (threshold is None) == (other[0] is None), name
        if threshold is not None:
            assert threshold == pytest.approx(other[0], abs=1e-5), name
        assert slope == pytest.approx(other[1], rel=1e-4), name


def scored_names(url: str) -> set[str]:
    from tagger.vocabulary import vocabulary

    return {entry.name for entry in vocabulary(get_database(url))}


def test_every_label_of_a_tagged_collection_is_decided_the_same_way_each_time(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 48)
    run_cli("tag", str(photos), home=home, **env)
    rules = rules_by_name(url)
    assert rules.keys() == scored_names(url) and len(rules) > 100
    assert {source for _, _, source, _ in rules.values()} == {"collection"}  # a zero-shot model: no bundle rules
    assert {images for *_, images in rules.values()} == {48}
    decided = [r for r in rules.values() if r[0] is not None]  # None: nothing in these 48 photos shows it
    assert len(decided) >= 20 and all(slope > 0 for _, slope, *_ in rules.values())
    matches = matching(url)
    assert 0 < len(matches) < 48 * 20  # some tags match, far from all that are stored
    out = run_cli("labels", "calibrate", home=home, **env).stdout
    assert out.startswith(f"calibrated {len(rules)} label(s) for synthetic (") and f": {len(rules)} collection" in out
    assert rules_by_name(url) == rules and matching(url) == matches  # the same collection, the same rules


def model_labels() -> list[str]:
    from mkt.factory import get_model

    return get_model("synthetic", "cpu").labels


@pytest.mark.parametrize("home_env, local_stream", [("sqlite", False), ("sqlite", True), ("postgresql", False)],
                         ids=["sqlite-clip", "sqlite-two-stream", "postgresql-clip"], indirect=["home_env"])
def test_labels_added_later_are_decided_as_tagging_with_them_from_the_start(home_env, synthetic_photos, tmp_path,
                                                                           local_stream):
    home, env, url = home_env
    if local_stream:
        env = {**env, "TAGSCOPE_MODEL": f"mkt:{two_stream_bundle(tmp_path / 'mkt.pt')}"}
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 48)
    new = ["blue thing", "circle", "checkered background", "crimson blob"]  # three the world shows, one it does not
    (tmp_path / "first.txt").write_text("\n".join(n for n in model_labels() if n not in new) + "\n")
    run_cli("labels", "import", str(tmp_path / "first.txt"), home=home, **env)
    run_cli("tag", str(photos), home=home, **env)
    run_cli("labels", "add", *new, home=home, **env)  # scored from stored embeddings, decided the same way
    later = rules_by_name(url)
    assert set(new) <= later.keys() and later.keys() == scored_names(url)
    # From scratch: the same vocabulary, the new labels in it before anything is tagged.
    scratch, on_sqlite = tmp_path / "scratch", {k: v for k, v in env.items() if k != "TAGSCOPE_DATABASE_URL"}
    (tmp_path / "vocabulary.txt").write_text("\n".join(dict.fromkeys(model_labels() + new)) + "\n")
    run_cli("labels", "import", str(tmp_path / "vocabulary.txt"), home=scratch, **on_sqlite)
    run_cli("tag", str(photos), home=scratch, **on_sqlite)
    scratch_url = f"sqlite:///{scratch.resolve()}/tagscope.sqlite"
    assert_same_rules(later, rules_by_name(scratch_url))
    assert matching(url) == matching(scratch_url)
    assert {label for _, label in matching(url)} & set(new) == set(new[:3])  # the new labels do match
