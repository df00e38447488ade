"""Saved searches in the OpenAPI document (:mod:`web.openapi`): the API and the page's forms
(:mod:`web.saved`)."""

from __future__ import annotations

from typing import Any

from indexer.search.filters import NAMES, SORTS
from web.openapi.search import PAGE
from web.openapi.shapes import NULLABLE_STR, errors, html_page, json_response, obj, query

SCHEMAS: dict[str, Any] = {
    "SavedSearch": obj({
        "id": {"type": "integer"}, "name": {"type": "string", "maxLength": 100}, "q": {"type": "string"},
        "filters": obj({name: NULLABLE_STR for name in NAMES}), "sort": {"type": "string", "enum": list(SORTS)},
        "url": {"type": "string", "description": "the search page's address that runs it"},
        "created_at": NULLABLE_STR, "updated_at": NULLABLE_STR}),
    "SavedSearches": obj({"saved": {"type": "array", "items": {"$ref": "#/components/schemas/SavedSearch"},
                                    "description": "by name"}}),
    "SavedSearchInput": obj({"name": {"type": "string", "minLength": 1, "maxLength": 100},
                             "q": {"type": "string", "maxLength": 300},
                             **{name: {"type": "string", "maxLength": 1000} for name in NAMES},
                             "sort": {"type": "string", "enum": list(SORTS), "default": "relevance"},
                             "replace": {"type": "boolean", "default": False,
                                         "description": "replace a saved search of this name (else 409)"}},
                            required=["name", "q"]),
}

PATHS: dict[str, Any] = {
    "/api/saved": {
        "get": {"summary": "The saved searches (a named query with its filters and sort), by name",
                "responses": {"200": json_response("SavedSearches", "the saved searches")}},
        "post": {"summary": "Save a search under a name",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/SavedSearchInput"}}}},
                 "responses": {"201": json_response("SavedSearch", "saved"),
                               "200": json_response("SavedSearch", "replaced (replace: true)"),
                               "409": json_response("Error", "a saved search has this name: send replace: true"),
                               **errors(400, 401, 403)}}},
    "/api/saved/{name}": {"delete": {
        "summary": "Forget a saved search",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": json_response("SavedSearch", "the saved search removed"), **errors(401, 403, 404)}}},
    "/saved": {**html_page("The saved searches (with q and filters: a form to save that search)",
                           [query("q", {"type": "string"}, "a text"), *PAGE[2:],
                            query("sort", {"type": "string", "enum": list(SORTS)}, "the order of the results")]),
               "post": {"summary": "The page's save form (name, q, filters, sort); answers 303 to the search",
                        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
                        "responses": {"303": {"description": "to the search page running it"},
                                      "409": json_response("Error", "a saved search has this name"),
                                      **errors(400, 403)}}},
    "/saved/remove": {"post": {
        "summary": "The page's remove button (name); answers 303 to /saved",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
        "responses": {"303": {"description": "back to the saved searches"}, **errors(403, 404)}}},
}
