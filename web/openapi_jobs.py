"""The jobs page's part of the OpenAPI document (:mod:`web.openapi`): starting a job, schedules,
model versions, the index, and the page's forms (:mod:`web.jobs`, :mod:`web.schedules`,
:mod:`web.models`, :mod:`web.jobs_page`). Imported by :mod:`web.jobs_page`, it adds its schemas and
paths to the document's before the app serves it.
"""

from __future__ import annotations

from typing import Any

from web.openapi import _NULLABLE_STR, PATHS, SCHEMAS, _errors, _html, _id, _json, _obj


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _form(summary: str, params: list, *codes: int) -> dict[str, Any]:
    """A page's form post: 303 back to the page, or the page again with the error."""
    return {"post": {"summary": summary + "; answers 303 back to /jobs, or the page with the error",
                     "parameters": params,
                     "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
                     "responses": {"303": {"description": "back to the jobs page"},
                                   **{str(c): {"description": "the jobs page with the error",
                                               "content": {"text/html": {}}} for c in (400, *codes)},
                                   "401": {"description": "access token missing or wrong (error page)"},
                                   "403": {"description": "a post from another site's page (error page)"}}}}


SCHEMAS.update({
    "JobStart": _obj({"folders": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100,
                                  "description": "absolute folders on the server"},
                      "model": {**_NULLABLE_STR, "description": "a model spec; default: the model setting, else "
                                                                "the collection's, else the default model"}},
                     required=["folders"]),
    "Schedule": _obj({"id": {"type": "integer"}, "paths": {"type": "array", "items": {"type": "string"}},
                      "every_s": {"type": "integer"}, "every": {"type": "string", "description": "e.g. 1h30m"},
                      "model": {"type": "string"}, "next_run_at": _NULLABLE_STR, "last_run_at": _NULLABLE_STR,
                      "last_job": {**_obj({"id": {"type": "integer"}, "state": {"type": "string"}}),
                                   "nullable": True}}),
    "Schedules": _obj({"schedules": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}),
    "ScheduleInput": _obj({"folders": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                           "every": {"type": "string", "description": "10s, 15m, 1h, 1d, 1h30m ... (1s to 365d)"},
                           "model": _NULLABLE_STR}, required=["folders", "every"]),
    "ModelVersions": _obj({"models": {"type": "array", "items": _obj({
        "version": {"type": "string"}, "spec": {"type": "string"}, "dim": {"type": "integer"},
        "active": {"type": "boolean", "description": "the version search serves"},
        "embeddings": {"type": "integer", "description": "tagged images with this version's embedding"},
        "tagged_images": {"type": "integer"}, "covers": {"type": "boolean"}, "active_since": _NULLABLE_STR})}}),
    "UseModel": _obj({"version": {"type": "string", "description": "a version id, a unique prefix, or a spec"}}),
    "Indexes": _obj({"indexes": {"type": "array", "items": _obj({
        "version": {"type": "string"}, "spec": {"type": "string"}, "active": {"type": "boolean"},
        "kind": {"type": "string", "description": "flat, hnsw or ivfpq"}, "size": {"type": "integer"},
        "dim": {"type": "integer"}, "stored_embeddings": {"type": "integer"},
        "pending_changes": {"type": "integer", "description": "stored embeddings not yet in the index"},
        "fresh": {"type": "boolean"}, "file_bytes": {"type": "integer"},
        "saved_at": {"type": "number", "nullable": True}, "rebuilding": {"type": "boolean"},
        "last_rebuild": {"type": "number", "nullable": True}, "rebuild_wanted": _NULLABLE_STR})}}),
})

PATHS["/api/jobs"]["post"] = {
    "summary": "Start a tagging job of folders on the server: a worker registers them, then tags what needs it "
               "(needs a broker)",
    "requestBody": _body("JobStart"),
    "responses": {"201": _json("Job", "the queued job"), **_errors(400, 401, 403, 409)}}

JOBS_PAGE_PATHS: dict[str, Any] = {
    "/api/schedules": {"get": {"summary": "Schedules of periodic re-tagging",
                               "responses": {"200": _json("Schedules", "the schedules")}},
                       "post": {"summary": "Add a schedule (needs a broker; beat starts its runs)",
                                "requestBody": _body("ScheduleInput"),
                                "responses": {"201": _json("Schedule", "the schedule"),
                                              **_errors(400, 401, 403, 409)}}},
    "/api/schedules/{schedule_id}": {"delete": {
        "summary": "Remove a schedule (its jobs and what they stored stay)", "parameters": [_id("schedule_id")],
        "responses": {"200": _json("Schedules", "the schedules left"), **_errors(401, 403, 404)}}},
    "/api/schedules/{schedule_id}/run": {"post": {
        "summary": "Run a schedule now (needs a broker; refused while its last job is active)",
        "parameters": [_id("schedule_id")],
        "responses": {"201": _json("Job", "the queued job"), **_errors(400, 401, 403, 404, 409)}}},
    "/api/models": {"get": {"summary": "Model versions of the collection; active: the one search serves",
                            "responses": {"200": _json("ModelVersions", "the versions")}}},
    "/api/models/use": {"post": {"summary": "Make a version the one search serves (as `tagscope models use`)",
                                 "requestBody": _body("UseModel"),
                                 "responses": {"200": _json("ModelVersions", "the versions"),
                                               **_errors(400, 401, 403)}}},
    "/api/index": {"get": {"summary": "Each model version's index: kind, size, stored embeddings, freshness",
                           "responses": {"200": _json("Indexes", "the indexes")}}},
    "/jobs": _html("The jobs page: jobs, schedules, model versions, the index"),
    "/jobs/start": _form("The jobs page's Tag now form (folders, one a line; model)", [], 409),
    "/jobs/{job_id}/cancel": _form("The jobs page's cancel button", [_id("job_id")], 404),
    "/jobs/{job_id}/resume": _form("The jobs page's resume button", [_id("job_id")], 404, 409),
    "/jobs/{job_id}/retry": _form("The jobs page's retry button", [_id("job_id")], 404, 409),
    "/jobs/schedules": _form("The jobs page's add-schedule form (folders, every, model)", [], 409),
    "/jobs/schedules/{schedule_id}/remove": _form("The jobs page's remove button", [_id("schedule_id")], 404),
    "/jobs/schedules/{schedule_id}/run": _form("The jobs page's run now button", [_id("schedule_id")], 404, 409),
    "/jobs/models/use": _form("The jobs page's use button (version)", []),
}
PATHS.update(JOBS_PAGE_PATHS)
