"""What every command shares: clean user errors, the settings of this invocation, the database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from core.db import Database, get_database
from core.errors import report_user_errors
from core.settings import Settings, load_settings


def fail_cleanly(fn: Callable) -> Callable:
    """User errors become one line on stderr and exit status 2 (:func:`core.errors.report_user_errors`);
    Ctrl-C says how to resume."""

    @wraps(fn)
    @report_user_errors
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: finished batches are stored; run the same command again to resume", err=True)
            sys.exit(130)

    return wrapper


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings of this command: the root options (--home ...) and ``overrides`` (flags of the
    command; ``None`` = not given) over the environment, ``tagscope.toml`` and the defaults."""
    base = ctx.find_root().obj or {}
    return load_settings(**{**base, **overrides})


def database(settings: Settings) -> Database:
    return get_database(settings.db_url)
