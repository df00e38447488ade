"""The command line's long-running processes, as tests start them: ``tagscope serve`` on a free
port, handed over once it answers, and ``tagscope worker``; each in its own process group (so a
test can signal the whole group: SIGSTOP, SIGKILL), stopped as a group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from . import ROOT
from .commands import tagscope_env
from .waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, *args: str, log: Path | None = None, timeout: float = 120,
                 **env: str) -> tuple[subprocess.Popen, str]:
    """A real ``tagscope serve`` on ``home`` on a free port (``args``: its options, ``env``: its
    settings), its output appended to ``log`` (``home/serve.log``; a file: a full pipe would block
    the server): (process, base URL) once it answers ``/api/status``, with the access token when
    ``env`` sets one. One that exits or does not answer within ``timeout`` fails, its log shown."""
    home.mkdir(parents=True, exist_ok=True)
    log = log or home / "serve.log"
    port = free_port()
    with open(log, "a") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "tagscope", "serve", "--port", str(port), *args], cwd=ROOT,
                                env=tagscope_env(home, **{"PYTHONPATH": str(ROOT), **env}), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    token = env.get("TAGSCOPE_ACCESS_TOKEN")
    status = urllib.request.Request(url + "/api/status", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        wait_until(lambda: proc.poll() is not None or _answers(status), timeout=timeout, every=0.3,
                   what="tagscope serve answering")
        assert proc.poll() is None, f"tagscope serve exited {proc.returncode}"
    except AssertionError as exc:
        stop_process(proc)
        raise AssertionError(f"{exc}; its log:\n{log.read_text()[-5000:]}") from None
    except BaseException:
        stop_process(proc)
        raise
    return proc, url


def _answers(status: urllib.request.Request) -> bool:
    try:
        urllib.request.urlopen(status, timeout=5).close()
        return True
    except OSError:  # not listening yet (or not answering 200)
        return False


def serving(home: Path, *args: str, **env: str) -> Iterator[str]:
    """:func:`start_server` until the generator is closed (a fixture's ``yield from``): yields its URL."""
    proc, url = start_server(home, *args, **env)
    try:
        yield url
    finally:
        stop_process(proc)


def start_worker(home: Path, env: dict[str, str], *options: str, log_mode: str = "w") -> subprocess.Popen:
    """A real ``tagscope worker`` in its own process group, logging to ``home/worker.log`` (``log_mode``
    "a": several workers share it)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "worker.log", log_mode) as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "tagscope", "worker", *options, "--", "--without-heartbeat",
                                 "--without-mingle", "--without-gossip"],
                                cwd=ROOT, env=tagscope_env(home, PYTHONPATH=str(ROOT), **env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to the process's group (a server's or a worker's warm shutdown), SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
