"""Waiting for an event: tests poll with a deadline, they never sleep for synchronisation."""

from __future__ import annotations

import time


def wait_until(condition, timeout: float = 180, every: float = 0.2, what: str = "condition"):
    """Poll ``condition`` until it returns something true (returned) or ``timeout`` passes. An
    exception from the condition ends the wait at once: a wrong URL is an error, not a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(every)
