"""Why a tag: patch maps for models with a local stream, a clear answer for plain CLIP models."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.settings import load_settings
from indexer.search.evidence import NO_LOCAL_STREAM, patch_evidence
from mkt.factory import create_tag_model
from web import create_app

from .bundles import two_stream_home


@pytest.fixture(scope="module")
def mkt_client(tmp_path_factory, synthetic_photos):
    home = two_stream_home(tmp_path_factory.mktemp("evidence"), synthetic_photos, 24)
    settings = load_settings(environ={}, home=str(home), loader_workers=0)
    return create_app(settings, {"TESTING": True}).test_client()


@pytest.fixture(scope="module")
def clip_client(tagged_home):
    settings = load_settings(environ={}, home=str(tagged_home), model="synthetic", loader_workers=0)
    return create_app(settings, {"TESTING": True}).test_client()


def test_a_two_stream_model_maps_a_tag_onto_the_photo(mkt_client):
    hit = mkt_client.get("/api/search?q=red+circle&k=1").get_json()["results"][0]
    body = mkt_client.get(f"/api/images/{hit['image_id']}/evidence?label=red+circle").get_json()
    assert body["available"] and body["grid"] == [4, 4] and len(body["scores"]) == 16
    assert len(body["top"]) == 2 and all(0 <= i < 16 for i in body["top"])
    assert 0.0 <= min(body["scores"]) and max(body["scores"]) <= 1.0  # shares among the vocabulary
    png = mkt_client.get(f"/image/{hit['image_id']}/evidence.png?label=red+circle")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert Image.open(io.BytesIO(png.data)).size == (64, 64)
    page = mkt_client.get(f"/image/{hit['image_id']}?why=red+circle").get_data(as_text=True)
    assert 'id="evidence-map"' in page and "why?" in page


def test_a_plain_clip_model_says_there_is_no_map(clip_client):
    image_id = clip_client.get("/api/search?q=red&k=1").get_json()["results"][0]["image_id"]
    body = clip_client.get(f"/api/images/{image_id}/evidence?label=red").get_json()
    assert body == {"label": "red", "available": False, "reason": NO_LOCAL_STREAM, "grid": [0, 0], "scores": [],
                    "top": []}
    assert clip_client.get(f"/image/{image_id}/evidence.png?label=red").status_code == 404
    page = clip_client.get(f"/image/{image_id}?why=red").get_data(as_text=True)
    assert 'id="no-evidence"' in page and "no local stream" in page


def test_bad_evidence_requests(mkt_client):
    assert mkt_client.get("/api/images/99999999/evidence?label=red").status_code == 404
    assert "empty label" in mkt_client.get("/api/images/1/evidence?label=").get_json()["error"]


def test_the_best_cell_follows_the_object():
    model = create_tag_model("synthetic")
    patches = np.zeros((16, model.embed_dim), np.float32)
    label = model.encode_labels(["red circle"]).float().detach()
    patches[:] = -label.numpy()  # every patch unlike the label ...
    patches[6] = label.numpy()  # ... except row 1, column 2
    found = patch_evidence(model, patches, label, "red circle", vocabulary=model.encode_labels(["blue star"]).detach())
    assert found.best_cell() == (1, 2) and found.grid == (4, 4)
    raw = patch_evidence(model, patches, label, "red circle")
    assert raw.best_cell() == (1, 2) and raw.scores[6] == pytest.approx(float(label @ label.T), rel=1e-4)
