"""PostgreSQL, Redis and RabbitMQ servers of one test's own, to stop and restart at will.

The fault tests restart a server in the middle of a job. Restarting the machine's shared servers
would cut every other client off too (a CI run, other tests on this machine), so each test runs
its own: the same binaries on a free port, data in the test's temporary folder, stopped and
deleted when the test ends, whether it passed or not. Starting one takes ~1 s (PostgreSQL,
``initdb`` included), ~0.1 s (Redis), ~8 s (a RabbitMQ node; ``stop_app``/``start_app`` then
take ~1.5 s each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .servers import free_port
from .services import services_required

PG_BIN = Path("/usr/lib/postgresql")


def _need(what: str, found: object) -> None:
    if not found:
        message = f"{what} not installed here"
        if services_required():
            pytest.fail(message + " and TAGSCOPE_REQUIRE_SERVICES=1")
        pytest.skip(message)


def _as_service_user(user: str, argv: list[str]) -> list[str]:
    """``argv`` as ``user`` when this process is root (initdb and RabbitMQ refuse to run as root)."""
    return ["runuser", "-u", user, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _service_folder(kind: str, user: str) -> Path:
    """A folder the service's user can reach (pytest's temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix=f"tagscope-{kind}-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user, user)
    return folder


class Postgres:
    """A PostgreSQL cluster of its own (trust authentication, user ``postgres``, no fsync)."""

    def __init__(self) -> None:
        versions = sorted(PG_BIN.glob("*/bin/pg_ctl"))
        _need("PostgreSQL (pg_ctl)", versions)
        self.bin, self.folder, self.port = versions[-1].parent, _service_folder("postgres", "postgres"), free_port()
        folder = self.folder
        _run(_as_service_user("postgres", [str(self.bin / "initdb"), "-D", str(folder / "data"), "-A", "trust",
                                           "-U", "postgres", "--no-sync", "-E", "UTF8"]))
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(_as_service_user("postgres", [str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-w",
                                           "-l", str(self.folder / "log"), "-o", options, *args]))

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as in a restart."""
        self._ctl("-m", "fast", "stop")

    def close(self) -> None:
        subprocess.run(_as_service_user("postgres", [str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"),
                                                     "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """A Redis server of its own, without persistence (a restart loses every message, as the CI
    server's would)."""

    def __init__(self) -> None:
        _need("redis-server", shutil.which("redis-server"))
        self.folder, self.port = _service_folder("redis", "root"), free_port()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        _run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
              "--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log"),
              "--pidfile", str(self.folder / "redis.pid")])
        _wait_for_port(self.port, 10)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True, timeout=30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class RabbitMQ:
    """A RabbitMQ node of its own (its own name, ports, database and logs; no plugins)."""

    def __init__(self) -> None:
        _need("rabbitmq-server", shutil.which("rabbitmq-server") and shutil.which("rabbitmqctl"))
        self.folder, self.port = _service_folder("rabbitmq", "rabbitmq"), free_port()
        self.node = f"tagscope{self.port}@localhost"
        folder = self.folder
        (folder / "plugins").write_text("[].\n")
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (folder / "rabbitmq-env.conf").write_text(f"NODENAME={self.node}\n")
        self.env = {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(folder / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "plugins"),
                    "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
                    "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
                    "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid")}
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while subprocess.run(["rabbitmqctl", "-n", self.node, "await_startup", "--timeout", "60"], env=self.env,
                             capture_output=True, timeout=90).returncode != 0:
            assert time.monotonic() < deadline, "the test's RabbitMQ node did not start"
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str) -> None:
        _run(["rabbitmqctl", "-n", self.node, *args], env=self.env)

    def stop(self) -> None:
        """The broker goes away (connections cut); durable queues and persistent messages stay."""
        self.ctl("stop_app")

    def start(self) -> None:
        self.ctl("start_app")
        _wait_for_port(self.port, 30)

    def close(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env, capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def _wait_for_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.1)
