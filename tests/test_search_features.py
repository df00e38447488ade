"""Search features through the Flask test client on collections tagged by the real CLI: calibrated
matches, paging, filters by folder and tag, "more like this", a photo as the query, the image
page's neighbours and full-size view. The browser flows are in test_browser.py."""

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

from core.errors import TagscopeError
from core.settings import load_settings
from indexer.search import relevance
from indexer.search.filters import Filters
from mkt import calibration
from tests.commands import run_cli
from tests.photos import read_labels_jsonl
from web import create_app


@pytest.fixture(scope="module")
def client(tagged_home):
    settings = load_settings(environ={}, home=str(tagged_home), model="synthetic", loader_workers=0)
    return create_app(settings, {"TESTING": True}).test_client()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, synthetic_photos) -> tuple[Path, dict[str, list[str]]]:
    """A collection in two folders, one whose name holds LIKE wildcards (``50%_off``)."""
    root = tmp_path_factory.mktemp("folders")
    names = sorted(read_labels_jsonl(synthetic_photos))[:60]
    layout = {"trips": names[:30], "50%_off": names[30:50], "5055off": names[50:]}
    for folder, files in layout.items():
        (root / "photos" / folder).mkdir(parents=True)
        for name in files:
            os.link(synthetic_photos / name, root / "photos" / folder / name)
    run_cli("tag", str(root / "photos"), "--model", "synthetic", home=root / "home")
    return root, layout


@pytest.fixture(scope="module")
def folder_client(folders):
    root, _ = folders
    settings = load_settings(environ={}, home=str(root / "home"), model="synthetic", loader_workers=0)
    return create_app(settings, {"TESTING": True}).test_client()


def search(client, query: str) -> dict:
    resp = client.get(f"/api/search?{query}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


# -- calibrated matches ------------------------------------------------------------------------

def test_calibrate_places_the_cutoff_between_median_and_top():
    sample = np.linspace(-0.4, 0.1, 500)
    cut = relevance.calibrate(sample, np.full(10, 0.6), np.full(10, 0.2))
    alpha = calibration.ALPHA
    assert cut.value == pytest.approx(np.median(sample) + alpha * (0.6 - np.median(sample)))
    own = relevance.calibrate(sample, np.full(10, 0.6), np.full(10, 0.2), calibration.Constants(0.5, -0.1))
    assert own.value == pytest.approx(np.median(sample) + 0.5 * (0.6 - np.median(sample)))
    assert cut.matches(0.6) and not cut.matches(0.0)


def test_calibrate_finds_no_match_for_a_text_that_fits_worse_than_a_generic_caption():
    cut = relevance.calibrate(np.linspace(-0.4, 0.1, 500), np.full(10, 0.1), np.full(10, 0.5))
    assert cut.value is None and not cut.matches(1.0)
    assert relevance.calibrate(np.zeros(5), np.zeros(0), np.zeros(0)).value is None  # empty collection
    floored = relevance.calibrate(np.linspace(-0.4, 0.1, 500), np.full(10, 0.3), np.full(10, -1.0),
                                  calibration.Constants(0.5, -1.0, floor=0.35))
    assert floored.value is None and floored.to_json()["calibration"]["best"] == pytest.approx(0.3)


def test_search_flags_matches_above_the_calibrated_cutoff(client, synthetic_photos):
    body = search(client, "q=striped+background&k=480")
    truth = read_labels_jsonl(synthetic_photos)
    assert body["cutoff"] is not None and body["calibration"]["top"] > body["cutoff"] > body["calibration"]["median"]
    flagged = {Path(r["path"]).name for r in body["results"] if r["match"]}
    assert all(r["match"] == (r["score"] >= body["cutoff"]) for r in body["results"])
    positives = {name for name, labels in truth.items() if "striped background" in labels}
    tp = len(flagged & positives)
    assert tp / len(flagged) >= 0.9 and tp / len(positives) >= 0.8, (len(flagged), len(positives), tp)


def test_a_text_that_describes_nothing_has_no_matches(client):
    body = search(client, "q=crimson+object&k=10")
    assert body["cutoff"] is None and body["matches"] == 0 and len(body["results"]) == 10
    assert not any(r["match"] for r in body["results"])
    html = client.get("/?q=crimson+object").get_data(as_text=True)
    assert "No photos match" in html and 'id="others"' in html and 'id="matches"' not in html


# -- paging --------------------------------------------------------------------------------------

def test_pages_continue_the_ranking_without_gaps_or_repeats(client):
    whole = [r["image_id"] for r in search(client, "q=blue+star&k=30")["results"]]
    pages = [search(client, f"q=blue+star&k=10&offset={o}") for o in (0, 10, 20)]
    assert [r["image_id"] for p in pages for r in p["results"]] == whole
    assert all(p["more"] for p in pages) and [p["offset"] for p in pages] == [0, 10, 20]
    last = search(client, "q=blue+star&k=100&offset=400")
    assert len(last["results"]) == 80 and not last["more"]  # 480 photos


def test_the_page_links_to_the_next_and_previous_pages(client):
    html = client.get("/?q=blue+star&page=2").get_data(as_text=True)
    assert 'id="prev-page"' in html and 'id="next-page"' in html and "page=3" in html
    assert client.get("/?q=blue+star&page=0").status_code == 400
    assert "offset must be between" in search_error(client, "q=red&offset=99999")


def search_error(client, query: str) -> str:
    resp = client.get(f"/api/search?{query}")
    assert resp.status_code == 400
    return resp.get_json()["error"]


# -- filters -------------------------------------------------------------------------------------

def test_folder_filter_keeps_photos_under_that_folder_only(folder_client, folders):
    root, layout = folders
    for folder, files in layout.items():
        body = search(folder_client, f"q=red+thing&k=100&folder={root / 'photos' / folder}/")
        names = {Path(r["path"]).name for r in body["results"]}
        assert names == set(files), folder  # "50%_off" must not match "5055off"
        assert all(Path(r["path"]).parent.name == folder for r in body["results"])
    assert search(folder_client, f"q=red&folder={root / 'nowhere'}")["results"] == []


def test_tag_filter_keeps_photos_whose_tag_matches(folder_client):
    body = search(folder_client, "q=circle&k=100&tag=blue+thing")
    assert body["results"] and body["filters"] == {"folder": None, "tag": "blue thing", "taken": None,
                                                  "place": None, "camera": None, "media": None}
    for r in body["results"]:
        tags = {t["label"]: t for t in folder_client.get(f"/api/images/{r['image_id']}").get_json()["tags"]}
        assert tags["blue thing"]["match"]


def test_bad_filters_get_one_line_errors():
    with pytest.raises(TagscopeError, match="NUL"):
        Filters.parse("a\x00b", None)
    with pytest.raises(TagscopeError, match="too long"):
        Filters.parse(None, "x" * 5000)
    assert Filters.parse("/", None).folder == "/" and Filters.parse("/a/b//", "").folder == "/a/b"


# -- more like this and a photo as the query ----------------------------------------------------

def test_more_like_this_ranks_by_the_photo_and_leaves_it_out(client):
    first = search(client, "q=green+square&k=1")["results"][0]["image_id"]
    body = search(client, f"like={first}&k=10")
    ids = [r["image_id"] for r in body["results"]]
    assert len(ids) == 10 and first not in ids and body["cutoff"] is None
    assert all(r["match"] is None for r in body["results"])
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.5
    assert client.get("/api/search?like=99999999").status_code == 404
    assert "not both" in search_error(client, f"q=red&like={first}")


def test_an_uploaded_photo_finds_itself_first_and_is_not_stored(client, synthetic_photos, tagged_home):
    photo = sorted(synthetic_photos.glob("*.png"))[3]
    before = sorted(p.name for p in tagged_home.rglob("*") if p.is_file())
    resp = client.post("/api/search/photo", data={"photo": (io.BytesIO(photo.read_bytes()), "mine.png"), "k": "5"},
                       content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert Path(results[0]["path"]).name == photo.name and results[0]["score"] > 0.99 and len(results) == 5
    after = sorted(p.name for p in tagged_home.rglob("*") if p.is_file())
    assert [n for n in after if n not in before and not n.endswith((".jpg", "-wal", "-shm"))] == []


@pytest.mark.parametrize("payload, fix", [(b"not a photo", "cannot read the photo"), (b"", "empty")])
def test_bad_uploads_get_a_clear_error(client, payload, fix):
    resp = client.post("/api/search/photo", data={"photo": (io.BytesIO(payload), "x.jpg")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400 and fix in resp.get_json()["error"]
    assert client.post("/api/search/photo", data={}, content_type="multipart/form-data").status_code == 400


def test_an_upload_over_the_limit_is_refused_before_it_is_read(client):
    body = b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"x.jpg\"\r\n\r\n" + b"0" * (21 << 20)
    resp = client.post("/api/search/photo", data=body, content_type="multipart/form-data; boundary=b")
    assert resp.status_code == 413 and "larger than 20 MB" in resp.get_json()["error"]


def test_upload_page_shows_similar_photos(client, synthetic_photos):
    photo = sorted(synthetic_photos.glob("*.png"))[5]
    resp = client.post("/search/photo", data={"photo": (io.BytesIO(photo.read_bytes()), "x.png")},
                       content_type="multipart/form-data")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="upload-heading"' in html and photo.name in html


# -- the image page -------------------------------------------------------------------------------

def test_image_page_links_previous_and_next_results(client):
    ids = [r["image_id"] for r in search(client, "q=red+circle&k=5")["results"]]
    html = client.get(f"/image/{ids[2]}?q=red+circle&r=2").get_data(as_text=True)
    prev = re.search(r'id="prev" rel="prev" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    nxt = re.search(r'id="next" rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert prev.startswith(f"/image/{ids[1]}?") and "r=1" in prev and "q=red+circle" in prev
    assert nxt.startswith(f"/image/{ids[3]}?") and "r=3" in nxt
    first = client.get(f"/image/{ids[0]}?q=red+circle&r=0").get_data(as_text=True)
    assert 'id="prev"' not in first and 'id="next"' in first and 'id="back"' in first
    assert 'id="model-version"' in first and 'id="more-like-this"' in first


def test_full_size_view_serves_the_original_file(client, synthetic_photos):
    result = search(client, "q=red&k=1")["results"][0]
    with client.get(f"/image/{result['image_id']}/full") as resp:
        assert resp.status_code == 200 and resp.mimetype == "image/png"
        assert resp.data == Path(result["path"]).read_bytes()
    assert client.get("/image/99999999/full").status_code == 404
