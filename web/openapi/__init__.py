"""The OpenAPI 3 document of the HTTP interface, served at ``GET /api/openapi.json``.

Written by hand next to the routes it describes, a part per concern: search and browsing
(:mod:`web.openapi.search`), one image (:mod:`web.openapi.images`), saved searches
(:mod:`web.openapi.saved`), near-duplicates (:mod:`web.openapi.duplicates`), jobs, schedules and
model versions (:mod:`web.openapi.jobs`), each built from :mod:`web.openapi.shapes`.
tests/test_openapi.py validates it against the OpenAPI 3.0 schema, checks that every route of the
app is in it, and checks real responses against its schemas.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from web.openapi import duplicates, images, jobs, saved, search, shapes

bp = Blueprint("openapi", __name__)
PARTS = (search, images, saved, duplicates, jobs)

SCHEMAS: dict[str, Any] = {name: schema for part in (shapes, *PARTS) for name, schema in part.SCHEMAS.items()}
PATHS: dict[str, Any] = {path: item for part in PARTS for path, item in part.PATHS.items()}
PATHS["/api/openapi.json"] = {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.0",
                                                            "content": {"application/json": {}}}}}}

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
