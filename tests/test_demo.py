"""The front door: `tagscope demo` runs the shipped MKT model (`synthetic-mkt`), and every query it
suggests finds its photos: at least one match each, and the matches right (labels.jsonl)."""

from __future__ import annotations

import json

import pytest

from .commands import run_cli
from .photos import read_labels_jsonl


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo")
    out = run_cli("demo", "--no-serve", home=home)
    return home, out


def test_the_demo_runs_mkt_and_suggests_seen_and_held_out_labels(demo_home):
    from mkt.factory import get_model

    home, out = demo_home
    model = get_model("synthetic-mkt")
    assert model.kind == "mkt" and model.prompt_encoder is not None and model.local_top_k > 0
    suggested = model.suggested_queries
    assert f"try: {', '.join(suggested)}" in out.stderr
    status = json.loads(run_cli("status", "--json", home=home).stdout)
    assert status["model"]["spec"] == "synthetic-mkt" and status["images"]["tagged"] == 1000
    kinds = {model.label_training(q) for q in suggested}
    assert kinds == {"seen", "held out"}  # from its own vocabulary, and labels it never trained on


def test_every_suggested_query_finds_its_photos(demo_home):
    home, _ = demo_home
    from mkt.factory import get_model

    truth = {str((home / "demo-photos" / name).resolve()): set(labels)
             for name, labels in read_labels_jsonl(home / "demo-photos").items()}
    for query in get_model("synthetic-mkt").suggested_queries:
        hits = json.loads(run_cli("search", query, "-k", "100", "--json", home=home).stdout)["results"]
        matched = [h["path"] for h in hits if h["match"]]
        right = sum(query in truth[path] for path in matched)
        assert matched, f"{query!r}: no match"
        assert right / len(matched) >= 0.8, f"{query!r}: {right} of {len(matched)} matches right"


def test_the_page_says_which_model_answers_and_whether_the_label_was_trained_on(demo_home):
    from core.settings import load_settings
    from mkt.factory import get_model
    from web import create_app

    home, _ = demo_home
    model = get_model("synthetic-mkt")
    client = create_app(load_settings(environ={}, home=str(home))).test_client()
    held_out = next(q for q in model.suggested_queries if model.label_training(q) == "held out")
    page = client.get("/", query_string={"q": held_out}).get_data(as_text=True)
    assert "Answered by <strong>synthetic-mkt</strong>" in page and "held out of its training" in page
    api = client.get("/api/search", query_string={"q": "blue star"}).get_json()
    assert api["model"]["spec"] == "synthetic-mkt" and api["model"]["label"] in ("seen", "held out")
    assert client.get("/api/search", query_string={"q": "a wooden boat"}).get_json()["model"]["label"] == "new"
    first = client.get("/").get_data(as_text=True)
    assert all(f">{q}</a>" in first for q in model.suggested_queries)  # the empty page suggests them too
