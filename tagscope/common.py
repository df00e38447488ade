"""What every command shares: clean user errors, the settings of this invocation, the database."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn

import click

from core.db import Database
from core.errors import TagscopeError, report_user_errors
from core.outage import outage_reason
from core.settings import Settings, load_settings
from migrations import get_database


def fail_cleanly(fn: Callable) -> Callable:
    """User errors become one line on stderr and exit status 2 (:func:`core.errors.report_user_errors`);
    so does a database that stopped answering mid-command (what waits for it, such as a
    ``tagscope tag`` following its job, gave up: :mod:`core.outage`); Ctrl-C says how to resume."""

    @wraps(fn)
    @report_user_errors
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: finished batches are stored; run the same command again to resume", err=True)
            sys.exit(130)
        except Exception as exc:
            reason = outage_reason(exc)
            if reason is None:
                raise
            raise TagscopeError(f"the database stopped answering ({reason}): what was stored stays; run the "
                                "same command again once it answers (check TAGSCOPE_DATABASE_URL and that "
                                "the server is running)") from None

    return wrapper


_standalone = [False]  # set by tagscope.cli.main: the command is all this process does (not a test's CliRunner)


def standalone() -> None:
    """Mark this process as one command's own (``tagscope ...``): :func:`heavy_imports` may then
    tune the garbage collector for it."""
    _standalone[0] = True


@contextmanager
def heavy_imports() -> Iterator[None]:
    """Importing torch, open_clip and the tagger makes ~450,000 objects that live as long as the
    process (and ~300,000 more in garbage cycles); the cyclic garbage collector's passes over them
    while they come cost about a second of start-up (issue 23). In a process of its own, it pauses
    meanwhile and they are then frozen out of its later passes (``gc.freeze``): the cycles the
    imports leave (under 10 MB) stay."""
    if not _standalone[0] or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def leave(code: object) -> NoReturn:
    """End this command's process as the interpreter would (non-daemon threads joined, ``atexit``
    handlers run: decode processes stopped, logs and output flushed) and skip the rest: tearing
    down every module of torch, open_clip and the model took ~0.5 s of each ``tag`` (issue 23).
    ``code`` as :class:`SystemExit` takes it."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    shutdown = getattr(threading, "_shutdown", None)  # the interpreter's own first step of an exit
    if shutdown is None:
        sys.exit(code)
    shutdown()  # thread pools told to stop (their exit hooks), then every non-daemon thread joined
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it anyway
            pass
    os._exit(code or 0)


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings of this command: the root options (--home ...) and ``overrides`` (flags of the
    command; ``None`` = not given) over the environment, ``tagscope.toml`` and the defaults."""
    base = ctx.find_root().obj or {}
    return load_settings(**{**base, **overrides})


def database(settings: Settings) -> Database:
    return get_database(settings.db_url)
