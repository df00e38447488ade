"""`tagscope serve`: the search server, in one process (waitress) or in several (gunicorn).

One process answers with its request threads; Python runs one thread at a time in a process, so
on a search server with several cores most of them idle while queries wait for each other
(docs/benchmarks.md: one process at 8 clients sending new texts ran ~50 queries/s on 2 cores).
``--processes N`` (``TAGSCOPE_WEB_PROCESSES``) runs N processes on the same port through gunicorn,
the usual pre-fork WSGI server (Linux and macOS), each with its own model, query cache and text
tower threads (cores / N), so N times the memory of one. They share this machine's index copy:
whichever holds the index lock keeps it current (:mod:`indexer.search.follow`), the others reload
the file when it changes. ``server.json`` names the parent (gunicorn's arbiter), which restarts a
worker that dies.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from core.errors import TagscopeError
from core.settings import Settings


def server_app(settings: Settings, processes: int = 1):
    """The Flask app of a server process, its model loaded (a wrong model fails now, not on the
    first query) and its index copy following the log; and the model's spec."""
    from indexer.search.follow import keep_following
    from web import create_app
    from web.context import get_searcher

    if processes > 1:  # the text tower's threads: this process's share of the cores
        import torch

        torch.set_num_threads(max(1, cores() // processes))
    app = create_app(settings)
    searcher = get_searcher(app)
    spec = searcher.model.spec
    logging.getLogger("tagscope.access").setLevel(logging.INFO)  # one line per request on stderr
    keep_following(searcher.index)  # this machine's index copy follows the log
    return app, spec


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def run_server(settings: Settings, host: str, port: int) -> None:
    if settings.web_processes > 1:
        serve_processes(settings, host, port, settings.web_processes)
        return
    import waitress

    from tagscope.remote import announce

    app, spec = server_app(settings)
    click.echo(f"Tagscope on http://{host}:{port}  (model {spec}; Ctrl-C to stop)", err=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit handlers run: server.json is withdrawn
    announce(settings, host, port, spec)  # `tagscope search` on this home asks this server
    # waitress: threads in one process, so the model and the index are loaded once and shared;
    # pure Python, also on macOS and Windows.
    waitress.serve(app, host=host, port=port, threads=settings.web_threads, ident="tagscope",
                   max_request_header_size=65536, clear_untrusted_proxy_headers=True, _quiet=True)


def serve_processes(settings: Settings, host: str, port: int, processes: int) -> None:
    """``processes`` gunicorn workers (``web_threads`` threads each) on ``host:port``; returns
    when the server stops. A worker that cannot start (a wrong model) stops the server with its
    one-line error."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        raise TagscopeError("--processes above 1 needs gunicorn (Linux or macOS): pip install gunicorn, "
                            "or serve with one process (--processes 1)") from None
    from tagscope.remote import _withdraw, announce, announce_file
    from web.context import get_searcher

    bind = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"

    def post_worker_init(worker) -> None:
        # the first worker up announces the server, under the arbiter's pid
        if not announce_file(settings).exists():
            spec = get_searcher(worker.wsgi).model.spec
            announce(settings, host, port, spec, pid=worker.ppid)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": bind, "workers": processes, "worker_class": "gthread",
                               "threads": settings.web_threads, "timeout": 300, "graceful_timeout": 10,
                               "limit_request_field_size": 65536, "control_socket_disable": True,
                               "post_worker_init": post_worker_init, "proc_name": "tagscope-serve",
                               "on_exit": lambda _arbiter: _withdraw(announce_file(settings), os.getpid()),
                               "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):  # in each worker, after the fork: torch and its threads start there
            try:
                return server_app(settings, processes)[0]
            except TagscopeError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(3)  # gunicorn's "worker failed to boot": the arbiter stops

    click.echo(f"Tagscope on http://{host}:{port}  ({processes} processes; Ctrl-C to stop)", err=True)
    Server().run()
