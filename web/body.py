"""What a JSON request body holds: the object itself, or a 400 that shows what to send; its
fields checked the same way by every blueprint that takes one."""

from __future__ import annotations

from typing import Any

from flask import request

from core.errors import TagscopeError


def json_body(example: str, ask: str = "send a JSON object") -> dict[str, Any]:
    """The request's JSON object, or a 400 saying ``{ask}: {example}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise TagscopeError(f"{ask}: {example}")
    return body


def string_list(value: Any, name: str) -> list[str]:
    """A JSON field holding a list of strings (one string is taken as a list of one)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TagscopeError(f'"{name}" must be a list of folder paths, e.g. ["/photos/2023"]')
    return value


def optional_string(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TagscopeError(f'"{name}" must be a string (or left out)')
    return value
