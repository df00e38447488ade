"""Curation: confirm, reject and add tags (store, API, CLI), the rules every view follows, and the
export ``tagscope train`` reads. On a collection of its own (verdicts change what it shows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import feedback
from core.settings import load_settings
from indexer.search.feedback import for_label
from migrations import get_database
from mkt.annotations import label_matrix, read_annotations
from tests.commands import run_cli
from tests.photos import photos_subset
from web import create_app


@pytest.fixture(scope="module")
def home(tmp_path_factory, synthetic_photos) -> Path:
    root = tmp_path_factory.mktemp("curation")
    photos_subset(synthetic_photos, root / "photos", 60)
    run_cli("tag", str(root / "photos"), "--model", "synthetic", home=root / "home")
    return root / "home"


@pytest.fixture(scope="module")
def client(home):
    settings = load_settings(environ={}, home=str(home), model="synthetic", loader_workers=0)
    return create_app(settings, {"TESTING": True}).test_client()


def search(client, text: str, k: int = 60) -> list[dict]:
    return client.get(f"/api/search?q={text}&k={k}").get_json()["results"]


def verdict(client, image_id: int, label: str, what: str, **headers):
    return client.post(f"/api/images/{image_id}/feedback", json={"label": label, "verdict": what}, headers=headers)


def test_rejected_tag_disappears_from_tags_and_search(client):
    hits = search(client, "blue thing")
    top = hits[0]["image_id"]
    resp = verdict(client, top, "Blue  thing", "reject")  # case and spacing do not matter
    assert resp.status_code == 200
    record = resp.get_json()
    assert "blue thing" not in [t["label"] for t in record["tags"]] and record["rejected"] == ["Blue thing"]
    assert top not in [h["image_id"] for h in search(client, "blue thing")]
    assert verdict(client, top, "blue thing", "clear").status_code == 200
    assert top in [h["image_id"] for h in search(client, "blue thing")]


def test_confirmed_or_added_tag_comes_first_everywhere(client):
    hits = search(client, "red circle")
    last = hits[-1]  # the photo the model thinks least of
    resp = verdict(client, last["image_id"], "red circle", "confirm")
    tags = resp.get_json()["tags"]
    assert tags[0]["label"] == "red circle" and tags[0]["confirmed"] and not tags[1]["confirmed"]
    again = search(client, "red circle")
    assert again[0]["image_id"] == last["image_id"] and again[0]["confirmed"] and again[0]["match"]
    added = verdict(client, last["image_id"], "my cat", "confirm").get_json()["tags"]
    assert {"label": "my cat", "score": None, "model_version": None, "confirmed": True, "match": True,
            "confidence": 1.0, "implied": False} in added
    assert search(client, "my cat")[0]["image_id"] == last["image_id"]


def test_verdicts_survive_a_retag(home, client):
    first = search(client, "green thing")[0]["image_id"]
    verdict(client, first, "green thing", "reject")
    run_cli("tag", str(home.parent / "photos"), "--model", "synthetic", "--retag", home=home)
    assert first not in [h["image_id"] for h in search(client, "green thing")]
    assert "green thing" not in [t["label"] for t in client.get(f"/api/images/{first}").get_json()["tags"]]


def test_bad_verdicts_get_clear_errors(client):
    image_id = search(client, "red", 1)[0]["image_id"]
    assert "verdict must be one of" in verdict(client, image_id, "red", "maybe").get_json()["error"]
    assert "empty label" in verdict(client, image_id, "  ", "confirm").get_json()["error"]
    assert "at most 200" in verdict(client, image_id, "x" * 300, "confirm").get_json()["error"]
    assert verdict(client, 99999999, "red", "confirm").status_code == 404
    bad = client.post(f"/api/images/{image_id}/feedback", data="not json", content_type="text/plain")
    assert bad.status_code == 400 and "send JSON" in bad.get_json()["error"]


def test_verdicts_are_writes_other_sites_cannot_make(client, home):
    image_id = search(client, "red", 1)[0]["image_id"]
    assert verdict(client, image_id, "red", "reject", Origin="http://evil.example").status_code == 403
    settings = load_settings(environ={"TAGSCOPE_ACCESS_TOKEN": "s3cret-token-0123456789"}, home=str(home),
                             model="synthetic", loader_workers=0)
    guarded = create_app(settings, {"TESTING": True}).test_client()
    assert verdict(guarded, image_id, "red", "reject").status_code == 401
    assert "red" not in feedback.for_image(get_database(settings.db_url), image_id)


def test_the_page_form_records_and_goes_back_to_the_page(client):
    image_id = search(client, "star", 1)[0]["image_id"]
    resp = client.post(f"/image/{image_id}/feedback", data={"label": "pink star", "verdict": "reject", "q": "star",
                                                            "r": "0"})
    assert resp.status_code == 303 and resp.headers["Location"].startswith(f"/image/{image_id}?")
    assert "q=star" in resp.headers["Location"]
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="rejected"' in html and "pink star" in html and 'id="add-tag"' in html


def test_feedback_export_is_training_data(home, tmp_path):
    run_cli("feedback", "confirm", "3", "orange thing", home=home)
    run_cli("feedback", "reject", "4", "orange thing", home=home)
    out = tmp_path / "feedback.jsonl"
    summary = json.loads(run_cli("feedback", "export", str(out), home=home).stdout)
    examples = {Path(e.file).name: e for e in read_annotations(out)}
    seen = (tmp_path / "feedback.jsonl.labels.txt").read_text().split("\n")
    assert summary["photos"] == len(examples) and "orange thing" in seen
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        assert not set(row["labels"]) & set(row["negatives"]) and not set(row["ignore"]) & set(row["labels"])
    exported = {r["file"]: r for r in rows}
    assert any("orange thing" in r["labels"] for r in exported.values())
    assert any("orange thing" in r["negatives"] for r in exported.values())
    ex = list(examples.values())
    y = label_matrix(ex, ["orange thing"])
    assert sorted(set(y[:, 0].tolist())) == [-1, 0, 1]  # positives, negatives and unknowns
    assert "no image 99999" in run_cli("feedback", "confirm", "99999", "x", home=home, check=False).stderr


def test_annotation_rows_with_a_label_in_two_roles_are_refused(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"file": "a.png", "labels": ["cat"], "negatives": ["cat"]}) + "\n")
    with pytest.raises(Exception, match="in two of labels, negatives and ignore"):
        read_annotations(bad)


def test_apply_orders_confirmed_first_and_drops_rejected():
    tags = [{"label": "a", "score": 0.9, "model_version": "v"}, {"label": "b", "score": 0.5, "model_version": "v"},
            {"label": "c", "score": 0.1, "model_version": "v"}]
    shown = feedback.apply(tags, {"C": feedback.CONFIRM, "a": feedback.REJECT, "z": feedback.CONFIRM})
    assert [t["label"] for t in shown] == ["c", "z", "b"] and [t["confirmed"] for t in shown] == [True, True, False]


@pytest.mark.training
def test_verdicts_search_and_training_export_on_sqlite_and_postgresql(home_env, synthetic_photos, tmp_path):
    """The verdict rules on both databases, and an export ``tagscope train`` trains on."""
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 16)
    run_cli("tag", str(photos), "--model", "synthetic", home=home, **env)
    hits = json.loads(run_cli("search", "red thing", "-k", "16", "--json", home=home, **env).stdout)["results"]
    ids = [h["image_id"] for h in hits]
    for image_id in ids[:6]:
        run_cli("feedback", "confirm", str(image_id), "warm light", home=home, **env)
    run_cli("feedback", "reject", str(ids[0]), "RED thing", home=home, **env)
    again = json.loads(run_cli("search", "red thing", "-k", "16", "--json", home=home, **env).stdout)["results"]
    assert ids[0] not in [h["image_id"] for h in again]
    warm = json.loads(run_cli("search", "warm light", "-k", "6", "--json", home=home, **env).stdout)["results"]
    assert sorted(h["image_id"] for h in warm) == sorted(ids[:6]) and all(h["confirmed"] for h in warm)
    db = get_database(url)
    assert for_label(db, "Warm  Light") == (set(ids[:6]), set())
    out = tmp_path / "verdicts.jsonl"
    run_cli("feedback", "export", str(out), home=home, **env)
    trained = tmp_path / "from-verdicts.pt"
    run_cli("train", "stage1", "--init", "synthetic", "--train", str(out), "--images", "/", "--seen",
            str(out) + ".labels.txt", "--out", str(trained), "--max-steps", "2", "--batch-size", "4", "--workers", "0",
            "--augment", "none", home=home, **env)
    assert trained.is_file()
