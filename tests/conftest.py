"""Shared fixtures: data directories, databases (SQLite, PostgreSQL), a tagged synthetic collection.

Tests that need a server (PostgreSQL, Redis, RabbitMQ) skip when it is not reachable, unless
``TAGSCOPE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns those skips into failures.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("TAGSCOPE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TAGSCOPE_TEST_REDIS", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("TAGSCOPE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


def services_required() -> bool:
    return os.environ.get("TAGSCOPE_REQUIRE_SERVICES", "") not in ("", "0")


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or fail, under TAGSCOPE_REQUIRE_SERVICES=1) when a server is not listening."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} not reachable on {host}:{port} ({exc})"
    if services_required():
        pytest.fail(message + " and TAGSCOPE_REQUIRE_SERVICES=1")
    pytest.skip(message)


def tagscope_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGSCOPE_") or k == "TAGSCOPE_REQUIRE_SERVICES"}
    env.update(TAGSCOPE_HOME=str(home), TAGSCOPE_LOADER_WORKERS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(*args: str, home: Path, check: bool = True, timeout: float = 600, cwd: Path = ROOT, **env: str,
            ) -> subprocess.CompletedProcess:
    """Run the real ``tagscope`` command line in a subprocess (in ``cwd``, the repository by default)."""
    env.setdefault("PYTHONPATH", str(ROOT))  # the package, whatever the working directory
    proc = subprocess.run([sys.executable, "-m", "tagscope", *args], cwd=cwd, env=tagscope_env(home, **env),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"tagscope {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_labels_jsonl(folder: Path) -> dict[str, list[str]]:
    lines = (folder / "labels.jsonl").read_text().splitlines()
    return {row["file"]: row["labels"] for row in map(json.loads, lines)}


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    from sqlalchemy import create_engine, text

    name = f"tagscope_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from core.db import _databases

    db = _databases.pop(url, None)
    if db is not None:
        db.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def synthetic_photos(tmp_path_factory) -> Path:
    """A generated collection (shared read-only by the tests that tag it)."""
    from mkt.synthetic import generate

    folder = tmp_path_factory.mktemp("synthetic-photos")
    generate(folder, n=480, seed=7)
    return folder


@pytest.fixture(scope="session")
def tagged_home(tmp_path_factory, synthetic_photos) -> Path:
    """A data directory whose collection was tagged once, through the real CLI, in-process."""
    home = tmp_path_factory.mktemp("tagged-home")
    run_cli("tag", str(synthetic_photos), "--model", "synthetic", home=home)
    return home


@pytest.fixture(params=["sqlite", "postgresql"])
def home_env(request, tmp_path) -> tuple[Path, dict[str, str], str]:
    """(home, environment, database URL) of an empty collection, on SQLite and on PostgreSQL."""
    home = tmp_path / "home"
    env = {"TAGSCOPE_MODEL": "synthetic"}
    if getattr(request, "param", "sqlite") == "postgresql":
        url = request.getfixturevalue("postgres_url")
        env["TAGSCOPE_DATABASE_URL"] = url
        run_cli("db", "upgrade", home=home, **env)
    else:
        url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    return home, env, url


def photos_subset(synthetic_photos: Path, folder: Path, n: int) -> Path:
    """``n`` photos of the shared synthetic collection in a folder of their own (hard links)."""
    folder.mkdir(parents=True)
    for name in sorted(read_labels_jsonl(synthetic_photos))[:n]:
        os.link(synthetic_photos / name, folder / name)
    return folder
