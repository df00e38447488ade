"""The OpenAPI 3 document of the HTTP interface, served at ``GET /api/openapi.json``.

Written by hand next to the routes it describes; tests/test_openapi.py validates it against the
OpenAPI 3.0 schema, checks that every route of the app is in it, and checks real responses
against its schemas.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from indexer.search.filters import NAMES, SORTS
from indexer.search.near_groups import NEIGHBOURS
from indexer.search.similar import MIN_THRESHOLD

bp = Blueprint("openapi", __name__)

_NULLABLE_STR = {"type": "string", "nullable": True}
_NULLABLE_INT = {"type": "integer", "nullable": True}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props),
            "additionalProperties": False}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": {"type": "string"}, "status": {"type": "integer"}}),
    "Hit": _obj({"image_id": {"type": "integer"}, "path": {"type": "string"},
                 "score": {"type": "number", "nullable": True, "description": "null in a listing without a query"},
                 "taken": {"type": "string", "nullable": True,
                           "description": "when taken, the camera's clock (ISO 8601, with the UTC offset when known)"},
                 "match": {"type": "boolean", "nullable": True,
                           "description": "score >= cutoff (text queries); null for photo queries"},
                 "mtime": {"type": "number", "nullable": True, "description": "file modified, seconds since 1970"},
                 "confirmed": {"type": "boolean", "description": "a person confirmed this label on the photo"},
                 "frame_s": {"type": "number", "nullable": True,
                             "description": "a video: the time of its best frame (seconds); null for photos"},
                 "stack": {"type": "array", "items": {"type": "string"},
                           "description": "the other files of this shot (a RAW beside its JPEG, a Live Photo's "
                                          "video): a stack comes back once, as its still"},
                 "similar": {"type": "array", "items": {"type": "integer"},
                             "description": "near-duplicates of this photo (resized, re-encoded copies) folded "
                                            "into it: a group comes back once"}}),
    "Calibration": {**_obj({"median": {"type": "number"}, "top": {"type": "number"},
                            "background_margin": {"type": "number"},
                            "best": {"type": "number", "description": "mean score of the guard_n best photos"},
                            "alpha": {"type": "number"}, "guard": {"type": "number"},
                            "floor": {"type": "number", "nullable": True,
                                      "description": "below this best score, nothing matches (null: no floor)"},
                            "top_n": {"type": "integer"}, "guard_n": {"type": "integer"}}),
                    "nullable": True, "description": "how the cutoff was derived (indexer/search/relevance.py)"},
    "SearchResults": _obj({
        "query": _NULLABLE_STR, "offset": {"type": "integer"}, "more": {"type": "boolean"},
        "cutoff": {"type": "number", "nullable": True,
                   "description": "results scoring at least this match the text; null: nothing matches "
                                  "(or a photo query, which has no cutoff)"},
        "calibration": {"$ref": "#/components/schemas/Calibration"},
        "matches": {"type": "integer", "description": "results on this page with match = true"},
        "filters": _obj({"folder": _NULLABLE_STR, "tag": _NULLABLE_STR, "taken": _NULLABLE_STR,
                         "place": _NULLABLE_STR, "camera": _NULLABLE_STR,
                         "media": {"type": "string", "nullable": True, "enum": ["photo", "raw", "video", None]}}),
        "model": _obj({"spec": {"type": "string"}, "version": {"type": "string"},
                       "kind": {"type": "string", "description": "e.g. zero-shot CLIP, MKT (two streams, ...)"},
                       "label": {"type": "string", "nullable": True, "enum": ["seen", "held out", "new", None],
                                 "description": "the query text was a training label (seen), held out of "
                                                "training, never a training label (new); null: not a text "
                                                "query, or a model not trained on labels"}}),
        "sort": {"type": "string", "enum": ["relevance", "newest", "oldest"]},
        "parts": {"type": "array", "nullable": True, "description": "a query with operators: its parts",
                  "items": _obj({"text": {"type": "string"}, "weight": {"type": "number"},
                                 "negative": {"type": "boolean"},
                                 "cutoff": {"type": "number", "nullable": True}})},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}),
    "BrowseGroups": _obj({
        "by": {"type": "string", "enum": ["month", "place", "country", "camera", "tag"]},
        "filters": {"type": "object"},
        "ungrouped": {"type": "integer", "description": "passing photos in no group (no date, no place...)"},
        "groups": {"type": "array", "items": _obj({
            "key": {"type": "string"}, "label": {"type": "string"}, "count": {"type": "integer"},
            "filters": {"type": "object", "description": "the filter that narrows a search to this group"},
            "covers": {"type": "array", "items": {"type": "integer"}, "description": "its newest photos' ids"},
            "url": {"type": "string", "description": "the listing of its photos, newest first"}})}}),
    "Tag": _obj({"label": {"type": "string"}, "score": {"type": "number", "nullable": True},
                 "model_version": _NULLABLE_STR,
                 "confirmed": {"type": "boolean", "description": "confirmed (or added) by a person: listed first"}}),
    "Evidence": _obj({"label": {"type": "string"}, "available": {"type": "boolean"}, "reason": _NULLABLE_STR,
                      "grid": {"type": "array", "items": {"type": "integer"}, "description": "rows, columns"},
                      "scores": {"type": "array", "items": {"type": "number"}, "description": "row-major"},
                      "top": {"type": "array", "items": {"type": "integer"},
                              "description": "the cells the local stream averages"}}),
    "Verdict": _obj({"label": {"type": "string", "maxLength": 200},
                     "verdict": {"type": "string", "enum": ["confirm", "reject", "clear"]}}),
    "Image": _obj({"image_id": {"type": "integer"}, "path": {"type": "string"}, "status": {"type": "string"},
                   "error": _NULLABLE_STR, "width": _NULLABLE_INT, "height": _NULLABLE_INT,
                   "format": _NULLABLE_STR, "duplicate_of": _NULLABLE_INT,
                   "mtime": {"type": "number", "nullable": True}, "model_version": _NULLABLE_STR,
                   "media": {"type": "string", "nullable": True, "enum": ["photo", "raw", "video", None]},
                   "taken_at": {**_NULLABLE_STR, "description": "ISO 8601, with the UTC offset when the file has one"},
                   "taken_at_source": {"type": "string", "nullable": True, "enum": ["exif", "video", "file", None]},
                   "camera": {**_obj({"make": _NULLABLE_STR, "model": _NULLABLE_STR, "lens": _NULLABLE_STR}),
                              "nullable": True},
                   "gps": {**_obj({"lat": {"type": "number"}, "lon": {"type": "number"}}), "nullable": True},
                   "place": {**_obj({"country": _NULLABLE_STR, "region": _NULLABLE_STR, "city": _NULLABLE_STR,
                                     "neighbourhood": _NULLABLE_STR}),
                             "nullable": True, "description": "from GPS, offline (GeoNames): the city people "
                             "name, and the neighbourhood (a section of it) when the position is near one"},
                   "duration_s": {"type": "number", "nullable": True},
                   "stack": {"type": "array", "items": {"type": "string"},
                             "description": "the other files of this shot"},
                   "stack_face": {**_NULLABLE_INT, "description": "the id of the file shown for the stack"},
                   "rejected": {"type": "array", "items": {"type": "string"},
                                "description": "labels a person rejected: never shown as tags"},
                   "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}}),
    "Model": {**_obj({"spec": {"type": "string"}, "version": {"type": "string"}}), "nullable": True},
    "Job": _obj({
        "id": {"type": "integer"}, "kind": {"type": "string"}, "state": {"type": "string"},
        "runner": _NULLABLE_STR, "schedule_id": _NULLABLE_INT,
        "folders": {"type": "array", "items": {"type": "string"},
                    "description": "the folders it was asked to tag (empty for a retry of failed images)"},
        "model": {**_obj({"spec": {"type": "string"}, "version": _NULLABLE_STR}), "nullable": True,
                  "description": "version is null while a queued job waits for its scan"},
        "total": {"type": "integer"}, "done": {"type": "integer"}, "failed": {"type": "integer"},
        "remaining": {"type": "integer"}, "rate_img_s": {"type": "number"}, "eta_s": {"type": "number",
                                                                                      "nullable": True},
        "tasks": _obj({"queued": {"type": "integer"}, "running": {"type": "integer"}, "done": {"type": "integer"}}),
        "workers": {"type": "array", "items": {"type": "string"}}, "error": _NULLABLE_STR,
        "warnings": {"type": "array", "items": {"type": "string"},
                     "description": "what its scan left alone, a line each (an empty folder: unmounted?)"},
        "created_at": _NULLABLE_STR, "started_at": _NULLABLE_STR, "finished_at": _NULLABLE_STR}),
    "Jobs": _obj({"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}),
    "SavedSearch": _obj({
        "id": {"type": "integer"}, "name": {"type": "string", "maxLength": 100}, "q": {"type": "string"},
        "filters": _obj({name: _NULLABLE_STR for name in NAMES}), "sort": {"type": "string", "enum": list(SORTS)},
        "url": {"type": "string", "description": "the search page's address that runs it"},
        "created_at": _NULLABLE_STR, "updated_at": _NULLABLE_STR}),
    "SavedSearches": _obj({"saved": {"type": "array", "items": {"$ref": "#/components/schemas/SavedSearch"},
                                     "description": "by name"}}),
    "SavedSearchInput": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 100},
                              "q": {"type": "string", "maxLength": 300},
                              **{name: {"type": "string", "maxLength": 1000} for name in NAMES},
                              "sort": {"type": "string", "enum": list(SORTS), "default": "relevance"},
                              "replace": {"type": "boolean", "default": False,
                                          "description": "replace a saved search of this name (else 409)"}},
                             required=["name", "q"]),
    "Status": {"type": "object", "required": ["images", "labels", "model", "index", "failures", "last_job"],
               "properties": {
                   "images": _obj({k: {"type": "integer"} for k in
                                   ("total", "tagged", "failed", "pending", "duplicates", "missing")}),
                   "labels": {"type": "integer"}, "model": {"$ref": "#/components/schemas/Model"},
                   "index": _obj({
                       "size": {"type": "integer", "description": "live vectors in this server's copy"},
                       "tombstones": {"type": "integer", "description": "entries of re-tagged or removed photos an "
                                                                        "HNSW graph keeps (a rebuild clears them)"},
                       "stored_embeddings": {"type": "integer"},
                       "pending_changes": {"type": "integer", "description": "change log entries not applied here"},
                       "fresh": {"type": "boolean", "description": "nothing stored is missing from this copy"},
                       "position": {"type": "integer", "nullable": True, "description": "last log entry applied"},
                       "log_head": {"type": "integer"},
                       "state": {"type": "string", "enum": ["ready", "building", "damaged", "missing", "empty"],
                                 "description": "building: this server is building its copy from the store "
                                                "(searches are answered from the store meanwhile); damaged: its "
                                                "file was set aside as damaged and nothing rebuilds it yet"},
                       "damaged": {**_NULLABLE_STR, "description": "why this copy's file was set aside as "
                                                                   "damaged, until a rebuild replaces it"}}),
                   "failures": {"type": "array", "items": {"type": "object"}},
                   "last_job": {"type": "object", "nullable": True}}},
}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "bad input (the message says what to change)", 401: "access token missing or wrong",
             403: "a write from another site's page", 404: "no such thing", 405: "method not allowed",
             409: "needs a broker", 413: "upload too large", 414: "address too long", 500: "internal error",
             503: "the database is unreachable (Retry-After: 5)"}
    return {str(c): _json("Error", words[c]) for c in codes}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def _html(summary: str, params: list | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [],
                    "responses": {"200": {"description": "an HTML page", "content": {"text/html": {}}},
                                  **_errors(400, 404)}}}


def _job_action(summary: str, code: str, codes: tuple[int, ...]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [_id("job_id")],
                     "responses": {code: _json("Job", "the job"), **_errors(*codes)}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_PAGE = [_query("k", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}, "results per page"),
         _query("offset", {"type": "integer", "minimum": 0, "maximum": 2000}, "first rank (paging)"),
         _query("folder", {"type": "string", "maxLength": 1000}, "only photos under this folder"),
         _query("tag", {"type": "string", "maxLength": 1000}, "only photos with this stored tag"),
         _query("taken", {"type": "string", "maxLength": 1000},
                "taken in this year, month or day, or range: 2023, 2023-07, 2023-07-14, 2023-07-01..2023-08-15 "
                "(the camera's clock)"),
         _query("place", {"type": "string", "maxLength": 1000},
                "in this country, region, city or neighbourhood (or country code)"),
         _query("camera", {"type": "string", "maxLength": 1000}, "camera make or model contains this"),
         _query("media", {"type": "string", "enum": ["photo", "raw", "video"]}, "only this kind of file")]

PATHS: dict[str, Any] = {
    "/api/search": {"get": {
        "summary": "Rank tagged images by any text (q) or like a tagged photo (like); with neither, list the "
                   "photos passing the filters by date",
        "parameters": [
            _query("q", {"type": "string", "maxLength": 300},
                   "a text, or parts with operators: 'beach + sunset' (both), 'dog -night' or 'dog NOT night' "
                   "(without what matches night), '2:beach + sunset' (weights 0.1-10); malformed: 400"),
            _query("like", {"type": "integer", "minimum": 1}, "an image id: photos most like it (more like this)"),
            _query("sort", {"type": "string", "enum": ["relevance", "newest", "oldest"]},
                   "relevance (default with q or like), or the matches by when taken (default newest without)"),
            *_PAGE,
            _query("min_score", {"type": "number", "minimum": -1, "maximum": 1}, "drop results scoring less")],
        "responses": {"200": _json("SearchResults", "one page of results, best first"),
                      **_errors(400, 404, 405, 414, 503)}}},
    "/api/search/photo": {"post": {
        "summary": "Rank tagged images like an uploaded photo (decoded in memory, never stored)",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["photo"],
            "properties": {"photo": {"type": "string", "format": "binary",
                                     "description": "JPEG, PNG, WebP, GIF, BMP or TIFF; up to 20 MB, 50 MP"},
                           "k": {"type": "integer", "minimum": 1, "maximum": 1000},
                           **{name: {"type": "string"} for name in ("folder", "tag", "taken", "place", "camera")},
                           "media": {"type": "string", "enum": ["photo", "raw", "video"]}}}}}},
        "responses": {"200": _json("SearchResults", "photos most like it, best first"),
                      **_errors(400, 403, 413)}}},
    "/api/browse": {"get": {
        "summary": "The photos passing the filters grouped by month, place, country, camera or tag, with counts",
        "parameters": [_query("by", {"type": "string", "enum": ["month", "place", "country", "camera", "tag"],
                                     "default": "month"}, "how to group"),
                       _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many groups"),
                       *_PAGE[2:]],
        "responses": {"200": _json("BrowseGroups", "the groups: months newest first, the others by count"),
                      **_errors(400)}}},
    "/api/images/{image_id}": {"get": {"summary": "One image and its stored tags", "parameters": [_id("image_id")],
                                       "responses": {"200": _json("Image", "the image"), **_errors(404)}}},
    "/api/images/{image_id}/feedback": {"post": {
        "summary": "Confirm, reject or add (confirm a new label) a tag of a photo, or clear a verdict",
        "parameters": [_id("image_id")],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Verdict"}}}},
        "responses": {"200": _json("Image", "the photo with its tags as people now see them"),
                      **_errors(400, 401, 403, 404)}}},
    "/image/{image_id}/feedback": {"post": {
        "summary": "The image page's verdict form (label, verdict); answers 303 back to the page",
        "parameters": [_id("image_id")],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
        "responses": {"303": {"description": "back to the image page"}, **_errors(400, 403, 404)}}},
    "/api/images/{image_id}/evidence": {"get": {
        "summary": "Why a tag: the label's share of each patch (models with a local stream; else available=false)",
        "parameters": [_id("image_id"), _query("label", {"type": "string", "maxLength": 200}, "the tag's text")],
        "responses": {"200": _json("Evidence", "the patch scores"), **_errors(400, 404)}}},
    "/image/{image_id}/evidence.png": {"get": {
        "summary": "The same as a heatmap over the photo",
        "parameters": [_id("image_id"), _query("label", {"type": "string", "maxLength": 200}, "the tag's text")],
        "responses": {"200": {"description": "PNG", "content": {"image/png": {}}}, **_errors(400, 404)}}},
    "/api/status": {"get": {"summary": "The collection: counts, model, index size, last job",
                            "responses": {"200": _json("Status", "the status")}}},
    "/api/jobs": {"get": {"summary": "Jobs, newest first",
                          "parameters": [{"name": "limit", "in": "query",
                                          "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                          "responses": {"200": _json("Jobs", "the jobs"), **_errors(400)}}},
    "/api/jobs/{job_id}": {"get": {"summary": "One job", "parameters": [_id("job_id")],
                                   "responses": {"200": _json("Job", "the job"), **_errors(404)}}},
    "/api/jobs/{job_id}/cancel": _job_action("Cancel an active job", "200", (400, 403, 404)),
    "/api/jobs/{job_id}/resume": _job_action("Resume a stopped job (needs a broker)", "200", (400, 403, 404, 409)),
    "/api/jobs/{job_id}/retry": _job_action("Retry a job's failed images in a new job (needs a broker)", "201",
                                            (400, 403, 404, 409)),
    "/api/saved": {
        "get": {"summary": "The saved searches (a named query with its filters and sort), by name",
                "responses": {"200": _json("SavedSearches", "the saved searches")}},
        "post": {"summary": "Save a search under a name",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/SavedSearchInput"}}}},
                 "responses": {"201": _json("SavedSearch", "saved"),
                               "200": _json("SavedSearch", "replaced (replace: true)"),
                               "409": _json("Error", "a saved search has this name: send replace: true"),
                               **_errors(400, 401, 403)}}},
    "/api/saved/{name}": {"delete": {
        "summary": "Forget a saved search",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _json("SavedSearch", "the saved search removed"), **_errors(401, 403, 404)}}},
    "/saved": {**_html("The saved searches (with q and filters: a form to save that search)",
                       [_query("q", {"type": "string"}, "a text"), *_PAGE[2:],
                        _query("sort", {"type": "string", "enum": list(SORTS)}, "the order of the results")]),
               "post": {"summary": "The page's save form (name, q, filters, sort); answers 303 to the search",
                        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
                        "responses": {"303": {"description": "to the search page running it"},
                                      "409": _json("Error", "a saved search has this name"),
                                      **_errors(400, 403)}}},
    "/saved/remove": {"post": {
        "summary": "The page's remove button (name); answers 303 to /saved",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
        "responses": {"303": {"description": "back to the saved searches"}, **_errors(403, 404)}}},
    "/api/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": {"description": "OpenAPI 3.0",
                                                        "content": {"application/json": {}}}}}},
    "/": _html("The search page (without q or like: the photos passing the filters, by date)",
               [_query("q", {"type": "string"}, "a text (operators as /api/search)"),
                _query("like", {"type": "integer"}, "an image id"),
                _query("sort", {"type": "string", "enum": ["relevance", "newest", "oldest"]}, "order"),
                _query("page", {"type": "integer", "minimum": 1}, "1-based page of 40"),
                *_PAGE[2:]]),
    "/browse": _html("Browse by month, place, country, camera or tag, with counts (each group links to its photos)",
                     [_query("by", {"type": "string", "enum": ["month", "place", "country", "camera", "tag"]},
                             "how to group"), *_PAGE[2:]]),
    "/image/{image_id}": _html("One image's page (with q or like, filters and r = its rank: previous/next)",
                               [_id("image_id")]),
    "/image/{image_id}/full": {"get": {
        "summary": "The photo at full size: the original file, or a JPEG of formats browsers do not show",
        "parameters": [_id("image_id")],
        "responses": {"200": {"description": "the photo", "content": {"image/*": {}}}, **_errors(404)}}},
    "/search/photo": {"post": {"summary": "The results page for an uploaded photo",
                               "requestBody": {"required": True, "content": {"multipart/form-data": {}}},
                               "responses": {"200": {"description": "an HTML page", "content": {"text/html": {}}},
                                             **_errors(400, 403, 413)}}},
    "/thumb/{image_id}": {"get": {"summary": "A registered image's thumbnail (256 px)", "parameters": [_id("image_id")],
                                  "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                                                "304": {"description": "not modified (ETag)"}, **_errors(404)}}},
}

# Near-duplicates (web/duplicates.py, indexer/search/duplicates.py)
_THRESHOLD = _query("threshold", {"type": "number", "minimum": MIN_THRESHOLD, "maximum": 1},
                    "cosine similarity from which photos are near-duplicates (default: the duplicate_threshold "
                    "setting, else the model's)")
_DUP_FOLDER = _query("folder", {"type": "string", "maxLength": 1000}, "only photos under this folder")
SCHEMAS.update({
    "DuplicateMember": _obj({
        "image_id": {"type": "integer"}, "path": {"type": "string"},
        "similarity": {"type": "number", "description": "cosine with the group's first member (1 for it)"},
        "width": _NULLABLE_INT, "height": _NULLABLE_INT, "size_bytes": {"type": "integer"}, "format": _NULLABLE_STR,
        "mtime": {"type": "number", "nullable": True}, "taken_at": _NULLABLE_STR,
        "media": {"type": "string", "nullable": True, "enum": ["photo", "raw", "video", None]},
        "original": {"type": "boolean", "description": "the first member: most pixels, then most bytes"}}),
    "DuplicateGroup": _obj({
        "image_id": {"type": "integer", "description": "its first member: /duplicates/{image_id} reviews it"},
        "size": {"type": "integer"},
        "similarity": {"type": "number", "description": "the lowest cosine of two members (>= threshold)"},
        "members": {"type": "array", "items": {"$ref": "#/components/schemas/DuplicateMember"},
                    "description": "the likely original first"}}),
    "Duplicates": _obj({
        "model": _obj({"spec": {"type": "string"}, "version": {"type": "string"}}),
        "threshold": {"type": "number"},
        "threshold_source": {"type": "string", "enum": ["given", "setting", "calibrated", "default"]},
        "folder": _NULLABLE_STR, "photos": {"type": "integer", "description": "tagged photos compared"},
        "total_groups": {"type": "integer"}, "total_duplicates": {"type": "integer",
                                                                 "description": "members after each group's first"},
        "crowded": {"type": "integer", "description": f"photos with {NEIGHBOURS} or more near-duplicates: only "
                                                      f"their nearest {NEIGHBOURS} were compared"},
        "offset": {"type": "integer"}, "limit": _NULLABLE_INT, "more": {"type": "boolean"},
        "groups": {"type": "array", "items": {"$ref": "#/components/schemas/DuplicateGroup"},
                   "description": "largest groups first"}}),
})
PATHS.update({
    "/api/duplicates": {"get": {
        "summary": "Groups of near-duplicate photos (resized, re-encoded, cropped copies, bursts) from the stored "
                   "embeddings; nothing is changed",
        "parameters": [_THRESHOLD, _DUP_FOLDER,
                       _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                              "groups per page"),
                       _query("offset", {"type": "integer", "minimum": 0}, "first group (paging)")],
        "responses": {"200": _json("Duplicates", "one page of groups"), **_errors(400)}}},
    "/duplicates": _html("The page of near-duplicate groups",
                         [_THRESHOLD, _DUP_FOLDER, _query("page", {"type": "integer", "minimum": 1}, "20 a page")]),
    "/duplicates/{image_id}": _html("One group's review page: its files side by side, the likely original first",
                                    [_id("image_id"), _THRESHOLD, _DUP_FOLDER]),
})

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Tagscope", "version": "1",
             "description": "Open-vocabulary photo tagging and search. Every error under /api/ is an Error."},
    "paths": PATHS,
    "components": {"schemas": SCHEMAS,
                   "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                                 "description": "only when the server has TAGSCOPE_ACCESS_TOKEN"}}},
}


@bp.get("/api/openapi.json")
def document():
    return jsonify(DOCUMENT)
