"""The OpenAPI document is valid OpenAPI 3.0, names every route of the app, and real responses
match its schemas (and its error shape)."""

from __future__ import annotations

import io
import re

import pytest
from openapi_schema_validator import OAS30Validator, validate
from openapi_spec_validator import validate as validate_spec

from core.settings import load_settings
from web import create_app


@pytest.fixture(scope="module")
def app(tagged_home):
    return create_app(load_settings(environ={}, home=str(tagged_home), model="synthetic"), {"TESTING": True})


@pytest.fixture(scope="module")
def doc(app):
    resp = app.test_client().get("/api/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def check(doc: dict, body, ref: str) -> None:
    validate(body, {"$ref": f"#/components/schemas/{ref}", "components": doc["components"]}, cls=OAS30Validator)


def test_the_document_is_valid_openapi_3(doc):
    validate_spec(doc)
    assert doc["openapi"].startswith("3.")


def test_every_route_is_documented_with_its_methods(app, doc):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in doc["paths"], f"{path} is not in the OpenAPI document"
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        assert methods <= set(doc["paths"][path]), (path, methods)


def test_responses_match_the_documented_schemas(app, doc):
    client = app.test_client()
    search = client.get("/api/search?q=red+circle&k=5").get_json()
    check(doc, search, "SearchResults")
    image_id = search["results"][0]["image_id"]
    check(doc, client.get("/api/search?q=crimson+object&k=3&offset=3").get_json(), "SearchResults")  # no cutoff
    check(doc, client.get(f"/api/search?like={image_id}&k=3&tag=red+thing").get_json(), "SearchResults")
    thumb = client.get(f"/thumb/{image_id}").data
    photo = client.post("/api/search/photo", data={"photo": (io.BytesIO(thumb), "q.jpg")},
                        content_type="multipart/form-data")
    check(doc, photo.get_json(), "SearchResults")
    check(doc, client.get(f"/api/images/{image_id}").get_json(), "Image")
    check(doc, client.get("/api/status").get_json(), "Status")
    jobs = client.get("/api/jobs").get_json()
    check(doc, jobs, "Jobs")
    check(doc, client.get(f"/api/jobs/{jobs['jobs'][0]['id']}").get_json(), "Job")
    with pytest.raises(Exception, match="is not valid|required"):  # the check itself can fail
        check(doc, {"query": "x"}, "SearchResults")


@pytest.mark.parametrize("method, url, path, status", [
    ("get", "/api/search?q=", "/api/search", 400), ("get", "/api/images/99999999", "/api/images/{image_id}", 404),
    ("post", "/api/jobs/1/resume", "/api/jobs/{job_id}/resume", 409), ("get", "/api/jobs?limit=0", "/api/jobs", 400),
    ("post", "/api/search?q=x", "/api/search", 405), ("get", "/api/search?like=99999999", "/api/search", 404),
    ("post", "/api/search/photo", "/api/search/photo", 400), ("get", "/image/99999999/full", None, 404)])
def test_errors_match_the_documented_error_and_status(app, doc, method, url, path, status):
    resp = getattr(app.test_client(), method)(url)
    assert resp.status_code == status
    if path is None:  # not under /api/: the HTML error page
        assert resp.mimetype == "text/html"
        return
    check(doc, resp.get_json(), "Error")
    if status == 405:  # a method the document does not offer for the path
        assert method not in doc["paths"][path]
    else:
        assert str(status) in doc["paths"][path][method]["responses"], (url, status)


def test_the_jobs_page_api_matches_its_schemas_and_errors(app, doc):
    """The jobs page's endpoints on a collection served without a broker (tests/test_jobs_page.py
    checks them with one, on SQLite and PostgreSQL)."""
    client = app.test_client()
    models = client.get("/api/models").get_json()
    check(doc, models, "ModelVersions")
    assert [m["spec"] for m in models["models"] if m["active"]] == ["synthetic"]
    check(doc, client.get("/api/index").get_json(), "Indexes")
    check(doc, client.get("/api/schedules").get_json(), "Schedules")
    jobs = client.get("/api/jobs").get_json()["jobs"]
    job, before = jobs[-1], len(jobs)
    assert job["folders"] and job["model"]["version"]  # a `tagscope tag` job names its folders
    for method, url, path, body, status in [
            ("post", "/api/jobs", "/api/jobs", {"folders": ["/"]}, 409),
            ("post", "/api/jobs", "/api/jobs", {"folders": []}, 400),
            ("post", "/api/schedules", "/api/schedules", {"folders": ["/"], "every": "1d"}, 409),
            ("delete", "/api/schedules/99", "/api/schedules/{schedule_id}", None, 404),
            ("post", "/api/schedules/99/run", "/api/schedules/{schedule_id}/run", None, 404),
            ("post", "/api/models/use", "/api/models/use", {"version": "no-such-model"}, 400)]:
        resp = getattr(client, method)(url, json=body)
        assert resp.status_code == status, (url, resp.get_json())
        check(doc, resp.get_json(), "Error")
        assert str(status) in doc["paths"][path][method]["responses"], (url, status)
    assert len(client.get("/api/jobs").get_json()["jobs"]) == before  # nothing was started
    assert client.get("/api/schedules").get_json() == {"schedules": []}  # nothing was added
