"""Search in the OpenAPI document (:mod:`web.openapi`): text, photo and filter-only searches, the
groups of browsing, the collection's status, and the pages that show them (:mod:`web.search`,
:mod:`web.upload`, :mod:`web.browse`)."""

from __future__ import annotations

from typing import Any

from web.openapi.shapes import NULLABLE_STR, errors, html_page, json_response, obj, query

SCHEMAS: dict[str, Any] = {
    "Hit": obj({"image_id": {"type": "integer"}, "path": {"type": "string"},
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
                                           "into it: a group comes back once"},
                "words": {"type": "array", "items": {"type": "string"},
                          "description": "the words of the photo's text (read by OCR) that the query found, as "
                                         "read, in reading order: the query's words (a plain query) or its "
                                         "text: parts' words; empty when none"}}),
    "Calibration": {**obj({"median": {"type": "number"}, "top": {"type": "number"},
                           "background_margin": {"type": "number"},
                           "best": {"type": "number", "description": "mean score of the guard_n best photos"},
                           "alpha": {"type": "number"}, "guard": {"type": "number"},
                           "floor": {"type": "number", "nullable": True,
                                     "description": "below this best score, nothing matches (null: no floor)"},
                           "top_n": {"type": "integer"}, "guard_n": {"type": "integer"}}),
                    "nullable": True, "description": "how the cutoff was derived (indexer/search/relevance.py)"},
    "SearchResults": obj({
        "query": NULLABLE_STR, "offset": {"type": "integer"}, "more": {"type": "boolean"},
        "cutoff": {"type": "number", "nullable": True,
                   "description": "results scoring at least this match the text; null: nothing matches "
                                  "(or a photo query, which has no cutoff)"},
        "calibration": {"$ref": "#/components/schemas/Calibration"},
        "matches": {"type": "integer", "description": "results on this page with match = true"},
        "filters": obj({"folder": NULLABLE_STR, "tag": NULLABLE_STR, "taken": NULLABLE_STR,
                        "place": NULLABLE_STR, "camera": NULLABLE_STR,
                        "media": {"type": "string", "nullable": True, "enum": ["photo", "raw", "video", None]}}),
        "model": obj({"spec": {"type": "string"}, "version": {"type": "string"},
                      "kind": {"type": "string", "description": "e.g. zero-shot CLIP, MKT (two streams, ...)"},
                      "label": {"type": "string", "nullable": True, "enum": ["seen", "held out", "new", None],
                                "description": "the query text was a training label (seen), held out of "
                                               "training, never a training label (new); null: not a text "
                                               "query, or a model not trained on labels"}}),
        "sort": {"type": "string", "enum": ["relevance", "newest", "oldest"]},
        "parts": {"type": "array", "nullable": True, "description": "a query with operators: its parts",
                  "items": obj({"text": {"type": "string"}, "weight": {"type": "number"},
                                "negative": {"type": "boolean"},
                                "words": {"type": "boolean",
                                          "description": "a text: part: found by the words in photos, no model"},
                                "cutoff": {"type": "number", "nullable": True}})},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}),
    "BrowseGroups": obj({
        "by": {"type": "string", "enum": ["month", "place", "country", "camera", "tag"]},
        "filters": {"type": "object"},
        "ungrouped": {"type": "integer", "description": "passing photos in no group (no date, no place...)"},
        "groups": {"type": "array", "items": {"$ref": "#/components/schemas/BrowseGroup"}}}),
    "BrowseGroup": obj({
        "key": {"type": "string"}, "label": {"type": "string"},
        "count": {"type": "integer", "description": "its photos (by tag: those with a matching tag of the "
                  "keyword or of a keyword under it)"},
        "filters": {"type": "object", "description": "the filter that narrows a search to this group"},
        "covers": {"type": "array", "items": {"type": "integer"}, "description": "its newest photos' ids"},
        "url": {"type": "string", "description": "the listing of its photos, newest first"},
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/BrowseGroup"},
                     "description": "by tag: the keywords under this one (the tree, nested); else empty"}}),
    "Model": {**obj({"spec": {"type": "string"}, "version": {"type": "string"}}), "nullable": True},
    "Status": {"type": "object", "required": ["images", "labels", "model", "index", "failures", "last_job"],
               "properties": {
                   "images": obj({k: {"type": "integer"} for k in
                                  ("total", "tagged", "failed", "pending", "duplicates", "missing")}),
                   "labels": {"type": "integer"}, "model": {"$ref": "#/components/schemas/Model"},
                   "index": obj({
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
                       "damaged": {**NULLABLE_STR, "description": "why this copy's file was set aside as "
                                                                  "damaged, until a rebuild replaces it"}}),
                   "failures": {"type": "array", "items": {"type": "object"}},
                   "last_job": {"type": "object", "nullable": True}}},
}

PAGE = [query("k", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}, "results per page"),
        query("offset", {"type": "integer", "minimum": 0, "maximum": 2000}, "first rank (paging)"),
        query("folder", {"type": "string", "maxLength": 1000}, "only photos under this folder"),
        query("tag", {"type": "string", "maxLength": 1000}, "only photos with this stored tag"),
        query("taken", {"type": "string", "maxLength": 1000},
              "taken in this year, month or day, or range: 2023, 2023-07, 2023-07-14, 2023-07-01..2023-08-15 "
              "(the camera's clock)"),
        query("place", {"type": "string", "maxLength": 1000},
              "in this country, region, city or neighbourhood (or country code)"),
        query("camera", {"type": "string", "maxLength": 1000}, "camera make or model contains this"),
        query("media", {"type": "string", "enum": ["photo", "raw", "video"]}, "only this kind of file")]

PATHS: dict[str, Any] = {
    "/api/search": {"get": {
        "summary": "Rank tagged images by any text (q) or like a tagged photo (like); with neither, list the "
                   "photos passing the filters by date",
        "parameters": [
            query("q", {"type": "string", "maxLength": 300},
                  "a text, or parts with operators: 'beach + sunset' (both), 'dog -night' or 'dog NOT night' "
                  "(without what matches night), '2:beach + sunset' (weights 0.1-10); malformed: 400"),
            query("like", {"type": "integer", "minimum": 1}, "an image id: photos most like it (more like this)"),
            query("sort", {"type": "string", "enum": ["relevance", "newest", "oldest"]},
                  "relevance (default with q or like), or the matches by when taken (default newest without)"),
            *PAGE,
            query("min_score", {"type": "number", "minimum": -1, "maximum": 1}, "drop results scoring less")],
        "responses": {"200": json_response("SearchResults", "one page of results, best first"),
                      **errors(400, 404, 405, 414, 503)}}},
    "/api/search/photo": {"post": {
        "summary": "Rank tagged images like an uploaded photo (decoded in memory, never stored)",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["photo"],
            "properties": {"photo": {"type": "string", "format": "binary",
                                     "description": "JPEG, PNG, WebP, GIF, BMP or TIFF; up to 20 MB, 50 MP"},
                           "k": {"type": "integer", "minimum": 1, "maximum": 1000},
                           **{name: {"type": "string"} for name in ("folder", "tag", "taken", "place", "camera")},
                           "media": {"type": "string", "enum": ["photo", "raw", "video"]}}}}}},
        "responses": {"200": json_response("SearchResults", "photos most like it, best first"),
                      **errors(400, 403, 413)}}},
    "/api/browse": {"get": {
        "summary": "The photos passing the filters grouped by month, place, country, camera or tag, with counts",
        "parameters": [query("by", {"type": "string", "enum": ["month", "place", "country", "camera", "tag"],
                                    "default": "month"}, "how to group"),
                       query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many groups"),
                       *PAGE[2:]],
        "responses": {"200": json_response("BrowseGroups", "the groups: months newest first, the others by count"),
                      **errors(400)}}},
    "/api/status": {"get": {"summary": "The collection: counts, model, index size, last job",
                            "responses": {"200": json_response("Status", "the status")}}},
    "/": html_page("The search page (without q or like: the photos passing the filters, by date)",
                   [query("q", {"type": "string"}, "a text (operators as /api/search)"),
                    query("like", {"type": "integer"}, "an image id"),
                    query("sort", {"type": "string", "enum": ["relevance", "newest", "oldest"]}, "order"),
                    query("page", {"type": "integer", "minimum": 1}, "1-based page of 40"),
                    *PAGE[2:]]),
    "/browse": html_page("Browse by month, place, country, camera or tag, with counts (each group links to its photos)",
                         [query("by", {"type": "string", "enum": ["month", "place", "country", "camera", "tag"]},
                                "how to group"), *PAGE[2:]]),
    "/search/photo": {"post": {"summary": "The results page for an uploaded photo",
                               "requestBody": {"required": True, "content": {"multipart/form-data": {}}},
                               "responses": {"200": {"description": "an HTML page", "content": {"text/html": {}}},
                                             **errors(400, 403, 413)}}},
}
