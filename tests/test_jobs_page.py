"""The API behind the jobs page, on SQLite and PostgreSQL: starting a job from the web (queued
for a worker to scan and tag), schedules (add, run now, remove), model versions (use another),
the index's state; the same broker rule as resume/retry (409 with the command to run, nothing
tagged in the web process); the cross-site and token rules for every new write; the page's forms.
The browser flow with a real worker is in tests/test_jobs_page_browser.py."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core.settings import load_settings
from tagger.jobs.task_names import SCAN_TASK
from web import create_app

from .commands import run_cli
from .photos import photos_subset
from .test_openapi import check

SAME_SITE = {"Origin": "http://127.0.0.1:5000", "Host": "127.0.0.1:5000"}  # a page of the server at 127.0.0.1:5000
FORM = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # what Chromium sends with the page's forms


def client_for(home: Path, env: dict[str, str], **settings):
    environ = {k: v for k, v in env.items() if k == "TAGSCOPE_DATABASE_URL"}
    app = create_app(load_settings(environ=environ, home=str(home), model="synthetic", **settings), {"TESTING": True})
    return app.test_client()


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    home = tmp_path_factory.mktemp("doc-home")
    return client_for(home, {}).get("/api/openapi.json").get_json()


def sent_scans(home: Path) -> list[list[int]]:
    """The scan messages waiting in the embedded broker (what a worker would receive): their args."""
    engine = create_engine(f"sqlite:///{home.resolve()}/broker.sqlite")
    try:
        with engine.connect() as conn:
            payloads = conn.execute(text("SELECT payload FROM kombu_message WHERE visible")).scalars().all()
    finally:
        engine.dispose()
    out = []
    for payload in map(json.loads, payloads):
        if payload["headers"]["task"] == SCAN_TASK:
            out.append(list(ast.literal_eval(payload["headers"]["argsrepr"])))
    return out


def test_starting_a_job_queues_its_scan_for_the_workers(home_env, tmp_path, doc):
    home, env, _ = home_env
    photos = tmp_path / "photos"
    photos.mkdir()
    bare = client_for(home, env)
    refused = bare.post("/api/jobs", json={"folders": [str(photos)]}, headers=SAME_SITE)
    assert refused.status_code == 409  # no broker: the web process never tags inside a request
    error = refused.get_json()["error"]
    assert f"tagscope tag {photos.resolve()} --model synthetic" in error and "TAGSCOPE_BROKER_URL" in error
    assert bare.get("/api/jobs").get_json() == {"jobs": []}
    check(doc, refused.get_json(), "Error")

    client = client_for(home, env, broker_url="embedded")
    for body, fix in ((None, "send a JSON object"), ({"folders": []}, "no folder given"),
                      ({"folders": "relative/photos"}, "relative path"), ({"folders": [1]}, "list of folder paths"),
                      ({"folders": [str(tmp_path / "nowhere")]}, "is not a folder"),
                      ({"folders": [str(photos)], "model": "nonsense"}, "unknown model spec"),
                      ({"folders": [str(photos)], "model": 3}, '"model" must be a string')):
        resp = client.post("/api/jobs", json=body, headers=SAME_SITE)
        assert resp.status_code == 400 and fix in resp.get_json()["error"], (body, resp.get_json())
    started = client.post("/api/jobs", json={"folders": [str(photos), str(photos) + "/"]}, headers=SAME_SITE)
    assert started.status_code == 201
    job = started.get_json()
    check(doc, job, "Job")
    assert (job["kind"], job["state"], job["runner"], job["folders"], job["model"]) == (
        "tag", "queued", "workers", [str(photos.resolve())], {"spec": "synthetic", "version": None})
    assert sent_scans(home) == [[job["id"]]]  # its scan waits in the broker for a worker
    assert client.get("/api/jobs").get_json()["jobs"] == [job]
    other = client.post("/api/jobs", json={"folders": [str(photos)], "model": "synthetic-mkt"}, headers=SAME_SITE)
    assert other.get_json()["model"]["spec"] == "synthetic-mkt"
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel", headers=SAME_SITE).get_json()
    assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled by the user"
    resumed = client.post(f"/api/jobs/{job['id']}/resume", headers=SAME_SITE).get_json()
    assert resumed["state"] == "queued"
    assert sorted(sent_scans(home)) == [[job["id"]], [job["id"]], [other.get_json()["id"]]]
    assert client.post("/api/jobs/999/resume", headers=SAME_SITE).status_code == 404


def test_schedules_are_added_run_now_and_removed(home_env, tmp_path, doc):
    home, env, _ = home_env
    photos = tmp_path / "photos"
    photos.mkdir()
    bare = client_for(home, env)
    refused = bare.post("/api/schedules", json={"folders": [str(photos)], "every": "1d"}, headers=SAME_SITE)
    assert refused.status_code == 409 and "tagscope worker --beat" in refused.get_json()["error"]
    client = client_for(home, env, broker_url="embedded")
    for body, fix in (({"folders": [str(photos)], "every": "soon"}, "use e.g. 10s"),
                      ({"folders": [str(photos)]}, '"every" is required'),
                      ({"folders": [], "every": "1h"}, "no folder given")):
        resp = client.post("/api/schedules", json=body, headers=SAME_SITE)
        assert resp.status_code == 400 and fix in resp.get_json()["error"], resp.get_json()
    added = client.post("/api/schedules", json={"folders": [str(photos)], "every": "1h30m"}, headers=SAME_SITE)
    assert added.status_code == 201
    sched = added.get_json()
    check(doc, sched, "Schedule")
    assert (sched["paths"], sched["every_s"], sched["every"], sched["model"], sched["last_job"]) == (
        [str(photos.resolve())], 5400, "1h30m", "synthetic", None)
    listed = client.get("/api/schedules").get_json()
    check(doc, listed, "Schedules")
    assert listed == {"schedules": [sched]}

    ran = client.post(f"/api/schedules/{sched['id']}/run", headers=SAME_SITE)
    assert ran.status_code == 201
    job = ran.get_json()
    check(doc, job, "Job")
    assert (job["kind"], job["state"], job["schedule_id"], job["folders"]) == (
        "schedule", "queued", sched["id"], [str(photos.resolve())])
    assert sent_scans(home) == [[job["id"]]]
    after = client.get("/api/schedules").get_json()["schedules"][0]
    assert after["last_job"] == {"id": job["id"], "state": "queued"} and after["next_run_at"] > sched["next_run_at"]
    again = client.post(f"/api/schedules/{sched['id']}/run", headers=SAME_SITE)  # its run is still active
    assert again.status_code == 400 and f"job {job['id']} is still queued" in again.get_json()["error"]
    assert len(client.get("/api/jobs").get_json()["jobs"]) == 1

    removed = client.delete(f"/api/schedules/{sched['id']}", headers=SAME_SITE)
    assert removed.status_code == 200 and removed.get_json() == {"schedules": []}
    for resp in (client.delete(f"/api/schedules/{sched['id']}", headers=SAME_SITE),
                 client.post(f"/api/schedules/{sched['id']}/run", headers=SAME_SITE)):
        assert resp.status_code == 404 and "no schedule" in resp.get_json()["error"]
    assert client.get("/api/jobs").get_json()["jobs"][0]["state"] == "queued"  # its job stays


def test_model_versions_switch_and_each_index_is_reported(home_env, synthetic_photos, tmp_path, doc):
    home, env, url = home_env
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 12)
    run_cli("tag", str(photos), home=home, **env)
    run_cli("tag", str(photos), "--model", "synthetic-mkt", home=home, **env)  # covers it: search switches
    client = client_for(home, env)
    models = client.get("/api/models").get_json()
    check(doc, models, "ModelVersions")
    assert [(m["spec"], m["active"], m["embeddings"], m["covers"]) for m in models["models"]] == [
        ("synthetic", False, 12, True), ("synthetic-mkt", True, 12, True)]
    old = models["models"][0]["version"]
    used = client.post("/api/models/use", json={"version": old[:10]}, headers=SAME_SITE)
    assert used.status_code == 200
    assert [m["active"] for m in used.get_json()["models"]] == [True, False]
    assert json.loads(run_cli("models", "--json", home=home, **env).stdout) == used.get_json()  # as the CLI sees it
    for body, fix in (({"version": "feedface"}, "no model version matches"), ({}, '"version" is required'),
                      (None, "send a JSON object")):
        resp = client.post("/api/models/use", json=body, headers=SAME_SITE)
        assert resp.status_code == 400 and fix in resp.get_json()["error"], resp.get_json()
    indexes = client.get("/api/index").get_json()
    check(doc, indexes, "Indexes")
    assert [(i["spec"], i["active"], i["kind"], i["size"], i["stored_embeddings"], i["fresh"])
            for i in indexes["indexes"]] == [("synthetic", True, "flat", 12, 12, True),
                                             ("synthetic-mkt", False, "flat", 12, 12, True)]
    assert str(home) not in json.dumps(indexes) and "sqlite" not in json.dumps(indexes)  # no paths
    page = client.get("/jobs").get_data(as_text=True)
    assert page.count('class="use"') == 1 and "12 vectors" in page and "12 images: 12 tagged" in page


WRITES = [("post", "/api/jobs", {"json": {"folders": ["/"]}}),
          ("post", "/api/schedules", {"json": {"folders": ["/"], "every": "1h"}}),
          ("delete", "/api/schedules/1", {}), ("post", "/api/schedules/1/run", {}),
          ("post", "/api/models/use", {"json": {"version": "synthetic"}}),
          ("post", "/jobs/start", {"data": {"folders": "/"}}), ("post", "/jobs/1/cancel", {}),
          ("post", "/jobs/1/resume", {}), ("post", "/jobs/1/retry", {}),
          ("post", "/jobs/schedules", {"data": {"folders": "/", "every": "1h"}}),
          ("post", "/jobs/schedules/1/remove", {}), ("post", "/jobs/schedules/1/run", {}),
          ("post", "/jobs/models/use", {"data": {"version": "synthetic"}})]


def test_writes_from_other_sites_are_refused_and_need_the_token(tmp_path):
    home = tmp_path / "home"
    client = client_for(home, {}, broker_url="embedded")
    for method, path, kwargs in WRITES:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Origin": "null", "Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            resp = getattr(client, method)(path, headers=headers, **kwargs)
            assert resp.status_code == 403 and "cross-site" in resp.get_data(as_text=True), (path, headers)
    assert client.get("/api/jobs").get_json() == {"jobs": []} and client.get("/api/schedules").get_json() == {
        "schedules": []}  # nothing was done
    token = "s3cret-token-of-enough-length"
    guarded = client_for(home, {}, broker_url="embedded", access_token=token)
    for method, path, kwargs in WRITES:
        assert getattr(guarded, method)(path, headers=SAME_SITE, **kwargs).status_code == 401, path
        wrong = getattr(guarded, method)(path, headers={**SAME_SITE, "Authorization": "Bearer nope"}, **kwargs)
        assert wrong.status_code == 401, path
    assert guarded.get("/jobs").status_code == 401 and guarded.get("/api/schedules").status_code == 401
    bearer = {**SAME_SITE, "Authorization": f"Bearer {token}"}
    resp = guarded.post("/api/jobs", json={"folders": [str(tmp_path)]}, headers=bearer)
    assert resp.status_code == 201
    guarded.get(f"/jobs?token={token}")  # a browser opens the link once; its cookie carries the token after
    assert guarded.post("/jobs/1/cancel", headers=FORM).status_code == 303
    assert guarded.get("/api/jobs/1").get_json()["state"] == "cancelled"


def test_the_page_shows_the_broker_rule_and_its_forms_work(tmp_path):
    home = tmp_path / "home"
    photos = tmp_path / "my photos"
    photos.mkdir()
    bare = client_for(home, {})
    page = bare.get("/jobs").get_data(as_text=True)
    assert 'id="no-broker"' in page and "No jobs yet" in page and 'id="nav-jobs"' in page
    refused = bare.post("/jobs/start", data={"folders": f"{photos}\n", "model": "synthetic"}, headers=FORM)
    text_ = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "tagscope tag &#39;" in text_ and "TAGSCOPE_BROKER_URL" in text_
    assert f">{photos}\n</textarea>" in text_  # what was typed stays
    client = client_for(home, {}, broker_url="embedded")
    assert 'id="no-broker"' not in client.get("/jobs").get_data(as_text=True)
    bad = client.post("/jobs/start", data={"folders": str(tmp_path / "nowhere")}, headers=FORM)
    assert bad.status_code == 400 and "is not a folder" in bad.get_data(as_text=True)
    started = client.post("/jobs/start", data={"folders": str(photos), "model": ""}, headers=FORM)
    assert started.status_code == 303 and started.headers["Location"].endswith("/jobs?did=started&id=1")
    page = client.get("/jobs?did=started&id=1").get_data(as_text=True)
    assert "Job 1 started" in page and 'data-job-id="1" data-state="queued"' in page and str(photos) in page
    assert 'class="cancel"' in page and "waiting for a worker" in page
    assert client.post("/jobs/1/cancel", headers=FORM).status_code == 303
    page = client.get("/jobs").get_data(as_text=True)
    assert 'data-state="cancelled"' in page and 'class="resume"' in page and 'class="cancel"' not in page
    twice = client.post("/jobs/1/cancel", headers=FORM)
    assert twice.status_code == 400 and "nothing to cancel" in twice.get_data(as_text=True)
    assert client.post("/jobs/7/resume", headers=FORM).status_code == 404
    added = client.post("/jobs/schedules", data={"folders": str(photos), "every": "2h"}, headers=FORM)
    assert added.status_code == 303
    bad_every = client.post("/jobs/schedules", data={"folders": str(photos), "every": "often"}, headers=FORM)
    body = bad_every.get_data(as_text=True)
    assert bad_every.status_code == 400 and "use e.g." in body and 'value="often"' in body and "details" in body
    page = client.get("/jobs").get_data(as_text=True)
    assert 'id="schedule-1"' in page and ">2h<" in page
    assert client.post("/jobs/schedules/1/run", headers=FORM).headers["Location"].endswith("did=schedule-run&id=2")
    assert client.post("/jobs/schedules/1/remove", headers=FORM).status_code == 303
    assert "No schedules" in client.get("/jobs").get_data(as_text=True)
    unknown = client.post("/jobs/models/use", data={"version": "nope"}, headers=FORM)
    assert unknown.status_code == 400 and "no model version matches" in unknown.get_data(as_text=True)
