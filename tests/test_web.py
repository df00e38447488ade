"""The Flask app through its test client, on a collection tagged by the real CLI."""

import pytest

from core.settings import load_settings
from web import create_app


@pytest.fixture(scope="module")
def client(tagged_home):
    settings = load_settings(environ={}, home=str(tagged_home), model="synthetic", loader_workers=0)
    app = create_app(settings, {"TESTING": True})
    return app.test_client()


def test_api_search_has_the_documented_shape(client):
    resp = client.get("/api/search?q=red+circle&k=5")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["query"] == "red circle" and len(body["results"]) == 5
    first = body["results"][0]
    assert set(first) == {"image_id", "path", "score", "match", "mtime", "confirmed", "frame_s", "stack", "taken",
                          "similar", "words"}
    assert set(body) >= {"cutoff", "calibration", "matches", "more", "offset", "filters"}
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("query, fix", [("q=", "empty query"), ("q=red&k=0", "k must be between"),
                                        ("q=red&k=lots", "whole number"), ("q=" + "x" * 400, "too long")])
def test_api_search_rejects_bad_input_with_a_reason(client, query, fix):
    resp = client.get(f"/api/search?{query}")
    assert resp.status_code == 400 and fix in resp.get_json()["error"]


def test_search_page_shows_thumbnails_with_scores(client):
    html = client.get("/?q=blue+star").get_data(as_text=True)
    assert 'id="matches"' in html and html.count('class="result') >= 10 and "/thumb/" in html


def test_search_page_empty_and_error_states(client):
    assert 'id="empty-state"' in client.get("/").get_data(as_text=True)
    assert "k must be between" in client.get("/?q=red&k=100000").get_data(as_text=True)


def in_decided_order(tags: list[dict]) -> bool:
    """Matches first (tags.match); the model's tags of each part best score first."""
    def scores(match: bool) -> list[float]:
        return [t["score"] for t in tags if t["match"] == match and t["score"] is not None and not t["confirmed"]]

    flags = [t["match"] for t in tags]
    return flags == sorted(flags, reverse=True) and all(scores(m) == sorted(scores(m), reverse=True)
                                                        for m in (True, False))


def test_image_page_lists_stored_tags(client):
    image_id = client.get("/api/search?q=green+square&k=1").get_json()["results"][0]["image_id"]
    html = client.get(f"/image/{image_id}").get_data(as_text=True)
    assert 'id="tags"' in html
    tags = client.get(f"/api/images/{image_id}").get_json()["tags"]
    assert tags and in_decided_order(tags)


def test_thumbnails_only_for_registered_images(client):
    image_id = client.get("/api/search?q=red&k=1").get_json()["results"][0]["image_id"]
    resp = client.get(f"/thumb/{image_id}")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg" and resp.data[:2] == b"\xff\xd8"
    assert client.get("/thumb/999999").status_code == 404
    assert client.get("/thumb/../../etc/passwd").status_code == 404


def test_api_status_reports_the_collection(client):
    st = client.get("/api/status").get_json()
    assert st["images"]["tagged"] > 0 and st["index"]["size"] == st["images"]["tagged"]


def test_min_score_is_a_relevance_cutoff(client):
    scores = [r["score"] for r in client.get("/api/search?q=red+thing&k=50").get_json()["results"]]
    cutoff = scores[9]
    kept = client.get(f"/api/search?q=red+thing&k=50&min_score={cutoff}").get_json()["results"]
    assert 10 <= len(kept) < 50 and all(r["score"] >= cutoff for r in kept)
    assert "between -1 and 1" in client.get("/api/search?q=red&min_score=7").get_json()["error"]


def test_show_json_has_the_shape_of_the_image_api(client, tagged_home):
    import json

    from .commands import run_cli

    image_id = client.get("/api/search?q=red+circle&k=1").get_json()["results"][0]["image_id"]
    shown = json.loads(run_cli("show", str(image_id), "--json", home=tagged_home).stdout)
    assert shown == client.get(f"/api/images/{image_id}").get_json()
    assert {"image_id", "path", "status", "tags"} <= set(shown) and shown["status"] == "tagged"
    assert shown["tags"] and in_decided_order(shown["tags"])
    missing = run_cli("show", "999999", home=tagged_home, check=False)
    assert missing.returncode == 2 and "no image 999999" in missing.stderr
