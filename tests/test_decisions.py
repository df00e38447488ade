"""Where each label's rule comes from (tagger/decisions.py): every scored label is decided for a
model version once it is tagged, the same collection gives the same rules, labels added later are
decided as a full re-tag decides them, a new version is decided before it is served, only keyword
leaves are scored, and synonyms join a label's embedding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from core.decisions import matching_tags
from core.schema import GROUP, Image, Label, LabelCutoff, ModelVersion, Tag
from core.settings import load_settings
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
    assert later == rules_by_name(scratch_url)  # scores in float64: the same rules, to the stored digit
    assert matching(url) == matching(scratch_url)
    assert {label for _, label in matching(url)} & set(new) == set(new[:3])  # the new labels do match


def settings_of(home: Path, env: dict[str, str], **overrides):
    environ = {k: v for k, v in env.items() if k.startswith("TAGSCOPE_")}
    return load_settings(environ=environ, home=str(home), loader_workers=1, **overrides)


def test_a_new_model_version_is_decided_before_it_is_served(home_env, synthetic_photos, tmp_path):
    """The upgrade's tasks run, and whoever closes its job (here the sweeper's call, in a process
    that loads the model for it) computes the new version's rules before switching it in."""
    from tagger.jobs import leases
    from tagger.jobs.close import close_job_if_complete
    from tagger.jobs.rows import IN_PROCESS
    from tagger.jobs.start import start_job
    from tagger.jobs.tasks import _tag
    from tagger.versions import switch_if_covering

    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 32)
    run_cli("tag", str(photos), home=home, **env)
    settings = settings_of(home, env, model="synthetic-mkt")
    db = get_database(url)
    from mkt.runtime.factory import model_on

    started = start_job(settings, db, model_on("synthetic-mkt", "cpu"), [str(photos)], IN_PROCESS)
    for task_id in started.task_ids:  # the tasks are done; the job is not closed yet
        assert _tag(settings, db, started.job_id, leases.claim(db, task_id, 60), None)[2]
        leases.finish(db, task_id)
    new = started.model_version_id
    assert rules_by_name(url, "synthetic-mkt") == {}
    assert not switch_if_covering(db, new)  # it covers the collection, but its tags would be served undecided
    assert close_job_if_complete(settings, db, started.job_id)
    rules = rules_by_name(url, "synthetic-mkt")
    assert rules.keys() == scored_names(url)
    assert {source for _, _, source, _ in rules.values()} <= {"bundle", "pooled", "collection"}
    assert "bundle" in {source for _, _, source, _ in rules.values()}  # the bundle's own calibration
    with db.session() as s:
        mv = s.get(ModelVersion, new)
        computed = s.scalars(select(LabelCutoff.computed_at).where(LabelCutoff.model_version_id == new)).all()
    assert mv.active_since is not None and max(computed) <= mv.active_since


def test_collection_rules_are_computed_again_once_the_collection_grew_by_a_tenth(home_env, synthetic_photos,
                                                                                 tmp_path):
    home, env, url = home_env
    photos = tmp_path / "photos"
    names = sorted(p.name for p in synthetic_photos.glob("*.png"))
    photos.mkdir()

    def tag_up_to(n: int) -> set[int]:
        for name in names[:n]:
            if not (photos / name).exists():
                os.link(synthetic_photos / name, photos / name)
        run_cli("tag", str(photos), home=home, **env)
        return {images for *_, images in rules_by_name(url).values()}

    assert tag_up_to(40) == {40}
    assert tag_up_to(48) == {48}  # 20% more: computed again
    assert tag_up_to(50) == {48}  # 4% more: kept


def test_readers_compute_missing_rules_the_same_way(home_env, synthetic_photos, tmp_path):
    from tagger.decisions import ensure_decided

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 24)), home=home, **env)
    rules = rules_by_name(url)
    db = get_database(url)
    with db.session() as s:  # a collection tagged before rules existed, say
        mv = s.scalar(select(ModelVersion.id))
        doomed = s.scalars(select(LabelCutoff.label_id).limit(10)).all()
        s.execute(delete(LabelCutoff).where(LabelCutoff.label_id.in_(doomed)))
    assert ensure_decided(db, mv) == 10
    assert rules_by_name(url) == rules
    assert ensure_decided(db, mv, recheck_s=0) == 0  # nothing left to do


def test_only_keyword_leaves_are_scored_and_decided(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    tree = {"Shapes": None, "Round": "Shapes", "circle": "Round", "crescent": "Round",
            "Colours": None, "red thing": "Colours", "blue thing": "Colours", "square": None}
    (tmp_path / "labels.txt").write_text("\n".join(tree) + "\n")
    run_cli("labels", "import", str(tmp_path / "labels.txt"), home=home, **env)
    db = get_database(url)
    with db.session() as s:
        ids = dict(s.execute(select(Label.name, Label.id)).all())
        for name, parent in tree.items():
            s.execute(update(Label).where(Label.id == ids[name]).values(
                parent_id=ids.get(parent), kind=GROUP if name == "Shapes" else "keyword"))
    leaves = {"circle", "crescent", "red thing", "blue thing", "square"}
    assert scored_names(url) == leaves
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 24)), home=home, **env)
    with db.session() as s:
        tagged = set(s.scalars(select(Label.name).join(Tag, Tag.label_id == Label.id).distinct()))
    assert tagged <= leaves and "circle" in tagged
    assert rules_by_name(url).keys() == leaves


def test_synonyms_join_the_label_embedding(home_env, synthetic_photos, tmp_path):
    import torch
    import torch.nn.functional as F

    from mkt.factory import get_model
    from tagger.vocabulary import label_embeddings, vocabulary

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 8)), home=home, **env)
    db, model = get_database(url), get_model("synthetic", "cpu")
    with db.session() as s:
        mv = s.scalar(select(ModelVersion.id))

    def embedding_of(name: str) -> torch.Tensor:
        ids, emb = label_embeddings(model, vocabulary(db), db, mv)
        with db.session() as s:
            return emb[ids.index(s.scalar(select(Label.id).where(Label.name == name)))]

    def set_synonyms(synonyms: list[str]) -> None:
        with db.session() as s:
            s.execute(update(Label).where(Label.name == "circle").values(synonyms=synonyms))

    alone = embedding_of("circle")
    with torch.inference_mode():
        texts = F.normalize(model.encode_labels(["circle", "round shape", "disc"]).float(), dim=-1)
    set_synonyms(["round shape", "disc"])
    assert torch.allclose(embedding_of("circle"), F.normalize(texts.mean(dim=0), dim=-1), atol=1e-5)
    assert not torch.allclose(embedding_of("circle"), alone, atol=1e-3)
    set_synonyms(["disc"])  # the same label, other synonyms: another embedding, not the one kept in memory
    assert torch.allclose(embedding_of("circle"), F.normalize(texts[[0, 2]].mean(dim=0), dim=-1), atol=1e-5)
    set_synonyms([])
    assert torch.equal(embedding_of("circle"), alone)


def test_the_sample_and_each_labels_best_stored_photos(home_env, synthetic_photos, tmp_path):
    """What collection rules are computed from: a fixed-seed sample of the stored embeddings, and
    each label's best stored tags (one statement per chunk of labels on PostgreSQL, a query per
    label on SQLite)."""
    from tagger.label_stats import best_stored, sample_ids

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 40)), "--top-n", "5", home=home, **env)
    db = get_database(url)
    with db.session() as s:
        mv = s.scalar(select(ModelVersion.id))
        tags = s.execute(select(Tag.label_id, Tag.image_id, Tag.score).where(Tag.model_version_id == mv)).all()
        labels = list(s.scalars(select(Label.id)))
    expected: dict[int, list[int]] = {i: [] for i in labels}
    for label_id, image_id, _ in sorted(tags, key=lambda t: (-t[2], t[1])):
        if len(expected[label_id]) < 3:
            expected[label_id].append(image_id)
    assert best_stored(db, mv, labels) == expected and sum(map(len, expected.values())) > 40
    sample = sample_ids(db, mv, 16)
    assert len(set(sample.tolist())) == 16 and set(sample.tolist()) <= {i for _, i, _ in tags}
    assert sample_ids(db, mv, 16).tolist() == sample.tolist()  # the same collection, the same sample
    assert sample_ids(db, mv, 100).tolist() == sorted({i for _, i, _ in tags})


def test_a_reader_whose_model_cannot_load_shows_the_stored_rules_and_says_why(home_env, synthetic_photos, tmp_path):
    """A collection upgraded from before rules existed, read on a machine where its model cannot
    load: `tagscope show` still answers, deciding by the rules stored, and warns in one line."""
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 12)
    run_cli("tag", str(photos), home=home, **env)
    db = get_database(url)
    with db.session() as s:
        s.execute(delete(LabelCutoff))
        s.execute(update(ModelVersion).values(spec=f"mkt:{tmp_path / 'gone.pt'}"))
        image_id = s.scalar(select(Image.id).order_by(Image.id))
    shown = run_cli("show", str(image_id), "--json", home=home, **{**env, "TAGSCOPE_MODEL": ""})
    import json

    tags = json.loads(shown.stdout)["tags"]
    assert tags and not any(t["match"] for t in tags)  # no rule: nothing is called a match
    assert "tag rules not computed" in shown.stderr
