"""Bounds on the counts people give: ``k``, ``limit``, ``offset``, ``page``, ``top``. One check for
the command line, the JSON API and the layers below them, so that ``-k -5`` is the same one-line
error everywhere instead of an unlimited query on SQLite (``LIMIT -5``) and a traceback on
PostgreSQL."""

from __future__ import annotations

from typing import Any

from core.errors import TagscopeError

MAX_LIMIT = 1000  # rows of a listing (jobs, duplicate groups) per request at most


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """``value`` as an int from ``low`` to ``high`` (both included); else a :class:`TagscopeError`
    naming ``name`` and the range."""
    if isinstance(value, bool):
        value = str(value)
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise TagscopeError(f"{name} must be a whole number between {low} and {high}, got {value!r}") from None
    if not low <= number <= high:
        raise TagscopeError(f"{name} must be between {low} and {high}, got {number}")
    return number
