"""Near-duplicates in the OpenAPI document (:mod:`web.openapi`): the groups in the API, their page
and one group's review page (:mod:`web.duplicates`, :mod:`indexer.search.duplicates`)."""

from __future__ import annotations

from typing import Any

from indexer.search.near_groups import NEIGHBOURS
from indexer.search.similar import MIN_THRESHOLD
from web.openapi.shapes import NULLABLE_INT, NULLABLE_STR, errors, html_page, json_response, obj, path_id, query

THRESHOLD = query("threshold", {"type": "number", "minimum": MIN_THRESHOLD, "maximum": 1},
                  "cosine similarity from which photos are near-duplicates (default: the duplicate_threshold "
                  "setting, else the model's)")
FOLDER = query("folder", {"type": "string", "maxLength": 1000}, "only photos under this folder")

SCHEMAS: dict[str, Any] = {
    "DuplicateMember": obj({
        "image_id": {"type": "integer"}, "path": {"type": "string"},
        "similarity": {"type": "number", "description": "cosine with the group's first member (1 for it)"},
        "width": NULLABLE_INT, "height": NULLABLE_INT, "size_bytes": {"type": "integer"}, "format": NULLABLE_STR,
        "mtime": {"type": "number", "nullable": True}, "taken_at": NULLABLE_STR,
        "media": {"type": "string", "nullable": True, "enum": ["photo", "raw", "video", None]},
        "original": {"type": "boolean", "description": "the first member: most pixels, then most bytes"}}),
    "DuplicateGroup": obj({
        "image_id": {"type": "integer", "description": "its first member: /duplicates/{image_id} reviews it"},
        "size": {"type": "integer"},
        "similarity": {"type": "number", "description": "the lowest cosine of two members (>= threshold)"},
        "members": {"type": "array", "items": {"$ref": "#/components/schemas/DuplicateMember"},
                    "description": "the likely original first"}}),
    "Duplicates": obj({
        "model": obj({"spec": {"type": "string"}, "version": {"type": "string"}}),
        "threshold": {"type": "number"},
        "threshold_source": {"type": "string", "enum": ["given", "setting", "calibrated", "default"]},
        "folder": NULLABLE_STR, "photos": {"type": "integer", "description": "tagged photos compared"},
        "total_groups": {"type": "integer"}, "total_duplicates": {"type": "integer",
                                                                 "description": "members after each group's first"},
        "crowded": {"type": "integer", "description": f"photos with {NEIGHBOURS} or more near-duplicates: only "
                                                      f"their nearest {NEIGHBOURS} were compared"},
        "offset": {"type": "integer"}, "limit": NULLABLE_INT, "more": {"type": "boolean"},
        "groups": {"type": "array", "items": {"$ref": "#/components/schemas/DuplicateGroup"},
                   "description": "largest groups first"}}),
}

PATHS: dict[str, Any] = {
    "/api/duplicates": {"get": {
        "summary": "Groups of near-duplicate photos (resized, re-encoded, cropped copies, bursts) from the stored "
                   "embeddings; nothing is changed",
        "parameters": [THRESHOLD, FOLDER,
                       query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                             "groups per page"),
                       query("offset", {"type": "integer", "minimum": 0}, "first group (paging)")],
        "responses": {"200": json_response("Duplicates", "one page of groups"), **errors(400)}}},
    "/duplicates": html_page("The page of near-duplicate groups",
                             [THRESHOLD, FOLDER, query("page", {"type": "integer", "minimum": 1}, "20 a page")]),
    "/duplicates/{image_id}": html_page("One group's review page: its files side by side, the likely original first",
                                        [path_id("image_id"), THRESHOLD, FOLDER]),
}
