"""The building blocks every part of the OpenAPI document (:mod:`web.openapi`) is written with:
objects, JSON responses and bodies, the error responses, path and query parameters, HTML pages."""

from __future__ import annotations

from typing import Any

NULLABLE_STR = {"type": "string", "nullable": True}
NULLABLE_INT = {"type": "integer", "nullable": True}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props),
            "additionalProperties": False}


SCHEMAS: dict[str, Any] = {"Error": obj({"error": {"type": "string"}, "status": {"type": "integer"}})}


def json_response(ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def json_request(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def errors(*codes: int) -> dict[str, Any]:
    words = {400: "bad input (the message says what to change)", 401: "access token missing or wrong",
             403: "a write from another site's page", 404: "no such thing", 405: "method not allowed",
             409: "needs a broker", 413: "upload too large", 414: "address too long", 500: "internal error",
             503: "the database is unreachable (Retry-After: 5)"}
    return {str(c): json_response("Error", words[c]) for c in codes}


def path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def html_page(summary: str, params: list | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [],
                    "responses": {"200": {"description": "an HTML page", "content": {"text/html": {}}},
                                  **errors(400, 404)}}}
