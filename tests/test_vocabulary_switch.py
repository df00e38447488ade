"""Vocabulary changes switch atomically for readers: labels being added stay hidden, and every
image shows its old tags whole, until one transaction makes them active; an interrupted
``labels add`` is finished by the next one; removed labels disappear at once."""

from __future__ import annotations

import json

from sqlalchemy import select

from core.schema import Label, ModelVersion
from core.settings import load_settings
from migrations import get_database

from .commands import run_cli
from .photos import photos_subset


def shown_tags(home, n: int) -> dict[int, list[tuple[str, float]]]:
    from tagger.status import image_record

    db = get_database(f"sqlite:///{home.resolve()}/tagscope.sqlite")
    return {i: [(t["label"], round(t["score"], 5)) for t in image_record(db, i)["tags"]] for i in range(1, n + 1)}


def test_labels_being_added_stay_hidden_until_they_switch_at_once(synthetic_photos, tmp_path):
    import torch

    from mkt.factory import get_model
    from tagger import relabel
    from tagger.vocabulary import seed_labels

    home = tmp_path / "home"
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 40)
    env = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TOP_N": "3"}
    run_cli("tag", str(photos), home=home, **env)
    before = shown_tags(home, 40)
    assert all(len(tags) == 3 for tags in before.values())
    # An interrupted `labels add`: the labels are in, scored for every image, not yet switched.
    settings = load_settings(environ={}, home=str(home), model="synthetic", top_n=3)
    db = get_database(settings.db_url)
    new = ["red round thing", "blue boxy thing", "green pointy thing"]
    seed_labels(db, new, source="user", state="pending")
    with db.session() as s:
        mv = s.scalars(select(ModelVersion)).one()
        pending = s.execute(select(Label.id, Label.name).where(Label.state == "pending")).all()
    model = get_model("synthetic", "cpu")
    with torch.inference_mode():
        emb = model.encode_labels([n for _, n in pending])
    assert relabel._rescore(db, mv, model, [i for i, _ in pending], emb, relabel.Rule(3, None), beside=True) == 40
    assert shown_tags(home, 40) == before  # readers see the old tags, whole
    listed = run_cli("labels", "list", home=home, **env).stdout
    assert "red round thing (pending: `tagscope labels add` finishes it)" in listed
    # The next `labels add` finishes the pending ones and switches them in one transaction.
    out = run_cli("labels", "add", "purple blobby thing", home=home, **env).stdout
    assert "added 1 label(s)" in out and "scored for 40 tagged images" in out
    after = shown_tags(home, 40)
    assert all(len(tags) == 3 for tags in after.values())
    assert any({n for n, _ in after[i]} & set(new) for i in after)  # the new labels show now
    # What a full re-tag with the same vocabulary stores: the same tags, the same scores to the
    # precision of the image tower's runtime (a re-tag computes the embeddings again: OpenVINO
    # bf16 or ONNX Runtime int8 batch them differently than the first run did)
    run_cli("tag", str(photos), "--retag", home=home, **env)
    again = shown_tags(home, 40)
    assert {i: [n for n, _ in tags] for i, tags in again.items()} == {i: [n for n, _ in t] for i, t in after.items()}
    assert all(abs(a[1] - b[1]) <= 2e-4 for i in after for a, b in zip(again[i], after[i]))
    labels = json.loads(run_cli("labels", "list", "--json", home=home, **env).stdout)
    assert {row["state"] for row in labels} == {"active"}


def test_removed_labels_disappear_from_every_image(synthetic_photos, tmp_path):
    home = tmp_path / "home"
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 30)
    env = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TOP_N": "3"}
    run_cli("tag", str(photos), home=home, **env)
    before = shown_tags(home, 30)
    top = max({n for tags in before.values() for n, _ in tags},
              key=lambda n: sum(n in {m for m, _ in t} for t in before.values()))
    run_cli("labels", "remove", top, home=home, **env)
    after = shown_tags(home, 30)
    assert all(top not in {n for n, _ in tags} and len(tags) == 3 for tags in after.values())
