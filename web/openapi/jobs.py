"""Jobs in the OpenAPI document (:mod:`web.openapi`): jobs (:mod:`web.jobs`), schedules
(:mod:`web.schedules`), model versions and the index (:mod:`web.models`), and the jobs page's
forms (:mod:`web.jobs_page`)."""

from __future__ import annotations

from typing import Any

from web.openapi.shapes import (
    NULLABLE_INT,
    NULLABLE_STR,
    errors,
    html_page,
    json_request,
    json_response,
    obj,
    path_id,
)


def _job_action(summary: str, code: str, codes: tuple[int, ...]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [path_id("job_id")],
                     "responses": {code: json_response("Job", "the job"), **errors(*codes)}}}


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


SCHEMAS: dict[str, Any] = {
    "Job": obj({
        "id": {"type": "integer"}, "kind": {"type": "string"}, "state": {"type": "string"},
        "runner": NULLABLE_STR, "schedule_id": NULLABLE_INT,
        "folders": {"type": "array", "items": {"type": "string"},
                    "description": "the folders it was asked to tag (empty for a retry of failed images)"},
        "model": {**obj({"spec": {"type": "string"}, "version": NULLABLE_STR}), "nullable": True,
                  "description": "version is null while a queued job waits for its scan"},
        "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
        "remaining": {"type": "integer"}, "rate_img_s": {"type": "number"}, "eta_s": {"type": "number",
                                                                                      "nullable": True},
        "tasks": obj({"queued": {"type": "integer"}, "running": {"type": "integer"}, "done": {"type": "integer"}}),
        "workers": {"type": "array", "items": {"type": "string"}}, "error": NULLABLE_STR,
        "warnings": {"type": "array", "items": {"type": "string"},
                     "description": "what its scan left alone, a line each (an empty folder: unmounted?)"},
        "created_at": NULLABLE_STR, "started_at": NULLABLE_STR, "finished_at": NULLABLE_STR}),
    "Jobs": obj({"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}),
    "JobStart": obj({"folders": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100,
                                 "description": "absolute folders on the server"},
                     "model": {**NULLABLE_STR, "description": "a model spec; default: the model setting, else "
                                                              "the collection's, else the default model"}},
                    required=["folders"]),
    "Schedule": obj({"id": {"type": "integer"}, "paths": {"type": "array", "items": {"type": "string"}},
                     "every_s": {"type": "integer"}, "every": {"type": "string", "description": "e.g. 1h30m"},
                     "model": {"type": "string"}, "next_run_at": NULLABLE_STR, "last_run_at": NULLABLE_STR,
                     "last_job": {**obj({"id": {"type": "integer"}, "state": {"type": "string"}}),
                                  "nullable": True}}),
    "Schedules": obj({"schedules": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}}}),
    "ScheduleInput": obj({"folders": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                          "every": {"type": "string", "description": "10s, 15m, 1h, 1d, 1h30m ... (1s to 365d)"},
                          "model": NULLABLE_STR}, required=["folders", "every"]),
    "ModelVersions": obj({"models": {"type": "array", "items": obj({
        "version": {"type": "string"}, "spec": {"type": "string"}, "dim": {"type": "integer"},
        "active": {"type": "boolean", "description": "the version search serves"},
        "embeddings": {"type": "integer", "description": "tagged images with this version's embedding"},
        "tagged_images": {"type": "integer"}, "covers": {"type": "boolean"}, "active_since": NULLABLE_STR})}}),
    "UseModel": obj({"version": {"type": "string", "description": "a version id, a unique prefix, or a spec"}}),
    "Indexes": obj({"indexes": {"type": "array", "items": obj({
        "version": {"type": "string"}, "spec": {"type": "string"}, "active": {"type": "boolean"},
        "kind": {"type": "string", "description": "flat, hnsw or ivfpq"}, "size": {"type": "integer"},
        "dim": {"type": "integer"}, "stored_embeddings": {"type": "integer"},
        "pending_changes": {"type": "integer", "description": "stored embeddings not yet in the index"},
        "fresh": {"type": "boolean"}, "file_bytes": {"type": "integer"},
        "saved_at": {"type": "number", "nullable": True}, "rebuilding": {"type": "boolean"},
        "last_rebuild": {"type": "number", "nullable": True}, "rebuild_wanted": NULLABLE_STR})}}),
}

PATHS: dict[str, Any] = {
    "/api/jobs": {
        "get": {"summary": "Jobs, newest first",
                "parameters": [{"name": "limit", "in": "query",
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {"200": json_response("Jobs", "the jobs"), **errors(400)}},
        "post": {"summary": "Start a tagging job of folders on the server: a worker registers them, then tags what "
                            "needs it (needs a broker)",
                 "requestBody": json_request("JobStart"),
                 "responses": {"201": json_response("Job", "the queued job"), **errors(400, 401, 403, 409)}}},
    "/api/jobs/{job_id}": {"get": {"summary": "One job", "parameters": [path_id("job_id")],
                                   "responses": {"200": json_response("Job", "the job"), **errors(404)}}},
    "/api/jobs/{job_id}/cancel": _job_action("Cancel an active job", "200", (400, 403, 404)),
    "/api/jobs/{job_id}/resume": _job_action("Resume a stopped job (needs a broker)", "200", (400, 403, 404, 409)),
    "/api/jobs/{job_id}/retry": _job_action("Retry a job's failed images in a new job (needs a broker)", "201",
                                            (400, 403, 404, 409)),
    "/api/schedules": {"get": {"summary": "Schedules of periodic re-tagging",
                               "responses": {"200": json_response("Schedules", "the schedules")}},
                       "post": {"summary": "Add a schedule (needs a broker; beat starts its runs)",
                                "requestBody": json_request("ScheduleInput"),
                                "responses": {"201": json_response("Schedule", "the schedule"),
                                              **errors(400, 401, 403, 409)}}},
    "/api/schedules/{schedule_id}": {"delete": {
        "summary": "Remove a schedule (its jobs and what they stored stay)", "parameters": [path_id("schedule_id")],
        "responses": {"200": json_response("Schedules", "the schedules left"), **errors(401, 403, 404)}}},
    "/api/schedules/{schedule_id}/run": {"post": {
        "summary": "Run a schedule now (needs a broker; refused while its last job is active)",
        "parameters": [path_id("schedule_id")],
        "responses": {"201": json_response("Job", "the queued job"), **errors(400, 401, 403, 404, 409)}}},
    "/api/models": {"get": {"summary": "Model versions of the collection; active: the one search serves",
                            "responses": {"200": json_response("ModelVersions", "the versions")}}},
    "/api/models/use": {"post": {"summary": "Make a version the one search serves (as `tagscope models use`)",
                                 "requestBody": json_request("UseModel"),
                                 "responses": {"200": json_response("ModelVersions", "the versions"),
                                               **errors(400, 401, 403)}}},
    "/api/index": {"get": {"summary": "Each model version's index: kind, size, stored embeddings, freshness",
                           "responses": {"200": json_response("Indexes", "the indexes")}}},
    "/jobs": html_page("The jobs page: jobs, schedules, model versions, the index"),
    "/jobs/start": _form("The jobs page's Tag now form (folders, one a line; model)", [], 409),
    "/jobs/{job_id}/cancel": _form("The jobs page's cancel button", [path_id("job_id")], 404),
    "/jobs/{job_id}/resume": _form("The jobs page's resume button", [path_id("job_id")], 404, 409),
    "/jobs/{job_id}/retry": _form("The jobs page's retry button", [path_id("job_id")], 404, 409),
    "/jobs/schedules": _form("The jobs page's add-schedule form (folders, every, model)", [], 409),
    "/jobs/schedules/{schedule_id}/remove": _form("The jobs page's remove button", [path_id("schedule_id")], 404),
    "/jobs/schedules/{schedule_id}/run": _form("The jobs page's run now button", [path_id("schedule_id")], 404, 409),
    "/jobs/models/use": _form("The jobs page's use button (version)", []),
}
