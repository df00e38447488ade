"""The one exception type a user can trigger, and how entry points report it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class TagscopeError(Exception):
    """A user-facing error: its message is a single line naming the fix."""


def report_user_errors(fn: F) -> F:
    """Wrap an entry point: a :class:`TagscopeError` becomes ``error: <message>`` on stderr and exit
    status 2, never a traceback. The one place that turns user errors into an exit."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TagscopeError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
