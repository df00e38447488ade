"""Shared fixtures: data directories, databases (SQLite, PostgreSQL), a tagged synthetic collection.

Tests that need a server (PostgreSQL, Redis, RabbitMQ) skip when it is not reachable, unless
``TAGSCOPE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns those skips into failures.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("TAGSCOPE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TAGSCOPE_TEST_REDIS", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("TAGSCOPE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
# exported image towers (mkt.runtime): one folder for the whole run, each model exported once
os.environ.setdefault("TAGSCOPE_RUNTIME_CACHE", str(Path(tempfile.gettempdir()) / f"tagscope-runtimes-{os.getpid()}"))
# The suite sets what it relies on, whatever the user's shell holds: no TAGSCOPE_* setting of the user's
# (core.settings), only the suite's own variables; the Hugging Face hub offline, as tagscope_env has it.
for _name in [n for n in os.environ if n == "TRANSFORMERS_OFFLINE" or n.startswith("TAGSCOPE_") and not n.startswith(
        ("TAGSCOPE_TEST_", "TAGSCOPE_REQUIRE_SERVICES", "TAGSCOPE_RUNTIME_CACHE", "TAGSCOPE_SCREENSHOTS"))]:
    del os.environ[_name]
os.environ["HF_HUB_OFFLINE"] = "1"  # a test of the online path unsets it


PROJECT_MODULES = r"(core|mkt|indexer|tagger|web|tagscope|migrations)(\.|$)"
SERVICE_PARAMS = {"postgresql", "redis", "rabbitmq"}


# What a test's own code (or a fixture it uses) calls that makes it a `worker` or `browser` test.
PROCESS_CALLS = ("start_worker(", "start_server(", "serving(", "subprocess.Popen(", "with tagging(")
PROCESS_FIXTURES = {"server", "curation_server"}
TRAINING_CALLS = ('"train", "stage', "train_cli(", "pretrain(", "fit_bundle(", "experiments_main(",
                  "torch.distributed.run")
TRAINING_FIXTURES = {"trained"}


def pytest_collection_modifyitems(items) -> None:
    """Every test that gets a PostgreSQL database or a Redis/RabbitMQ broker (a fixture or a
    parameter) is a ``services`` test, whatever its module says: the fast tier never needs them.
    A test that starts worker or server processes, drives a browser or trains a model without
    saying so in its markers is a collection error: the fast tier must not do that by mistake."""
    import inspect

    unmarked = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = {str(v) for v in callspec.params.values()} if callspec else set()
        if "postgres_url" in item.fixturenames or params & SERVICE_PARAMS:
            item.add_marker(pytest.mark.services)
        marks = {m.name for m in item.iter_markers()}
        source = inspect.getsource(item.function) if hasattr(item, "function") else ""
        if "browser" in item.fixturenames and "browser" not in marks:
            unmarked.append(f"{item.nodeid}: drives a browser without @pytest.mark.browser")
        elif (any(call in source for call in PROCESS_CALLS) or PROCESS_FIXTURES & set(item.fixturenames)) \
                and not marks & {"worker", "browser"}:
            unmarked.append(f"{item.nodeid}: starts processes without @pytest.mark.worker")
        if (any(call in source for call in TRAINING_CALLS) or TRAINING_FIXTURES & set(item.fixturenames)) \
                and "training" not in marks:
            unmarked.append(f"{item.nodeid}: trains a model without @pytest.mark.training")
    if unmarked:
        raise pytest.UsageError("tests without their tier's marker:\n" + "\n".join(unmarked))


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
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAGSCOPE_") or k in ("TAGSCOPE_REQUIRE_SERVICES", "TAGSCOPE_RUNTIME_CACHE")}
    env.update(TAGSCOPE_HOME=str(home), TAGSCOPE_LOADER_WORKERS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(*args: str, home: Path, check: bool = True, timeout: float = 600, cwd: Path = ROOT, process: bool = False,
            **env: str) -> subprocess.CompletedProcess:
    """Run the real ``tagscope`` command line on ``home`` with ``env`` (in ``cwd``, the repository by
    default): in this process through click's runner, which saves the seconds each new interpreter
    spends importing torch and loading the model; with ``process=True`` in a subprocess (``timeout``
    applies), for what only a process shows: start-up, imports, signals, a crash."""
    if process:
        env.setdefault("PYTHONPATH", str(ROOT))  # the package, whatever the working directory
        proc = subprocess.run([sys.executable, "-m", "tagscope", *args], cwd=cwd, env=tagscope_env(home, **env),
                              capture_output=True, text=True, timeout=timeout)
    else:
        proc = _run_cli_here(args, cwd, tagscope_env(home, **env))
    if check and proc.returncode != 0:
        raise AssertionError(f"tagscope {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _run_cli_here(args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One CLI invocation in this process with exactly ``env`` (other TAGSCOPE_ variables unset), in
    ``cwd``, its log lines on its own stderr as a fresh process would write them."""
    import logging
    import traceback
    import warnings

    from click.testing import CliRunner

    from tagscope.cli import cli

    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []  # so the command's logging.basicConfig writes to the stderr captured below
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            # As a process shows them (a line on stderr), not as the errors pytest makes of them;
            # but deprecated APIs that the project's own code calls still fail the test.
            warnings.simplefilter("default")
            warnings.filterwarnings("error", category=DeprecationWarning, module=PROJECT_MODULES)
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            result = CliRunner().invoke(cli, list(args), env=overrides, prog_name="tagscope")
    finally:
        os.chdir(before)
        root.handlers, root.level = handlers, level
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # as an interpreter would print it
    return subprocess.CompletedProcess(["tagscope", *args], result.exit_code, result.stdout, stderr)


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


def tagged_count(url: str) -> int:
    """Tagged images in the database at ``url``; 0 while its schema does not exist yet. Any other
    error (a wrong URL, a server that is down) is raised."""
    from sqlalchemy import func, inspect, select

    from core.db import TAGGED, Image, get_database

    db = get_database(url, migrate=False)
    with db.session() as s:
        if not inspect(s.connection()).has_table("images"):
            return 0
        return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == TAGGED)) or 0)


def start_worker(home: Path, env: dict[str, str], *options: str, log_mode: str = "w") -> subprocess.Popen:
    """A real ``tagscope worker`` in its own process group, logging to ``home/worker.log`` (``log_mode``
    "a": several workers share it)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "worker.log", log_mode) as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "tagscope", "worker", *options, "--", "--without-heartbeat",
                                 "--without-mingle", "--without-gossip"],
                                cwd=ROOT, env=tagscope_env(home, PYTHONPATH=str(ROOT), **env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc: subprocess.Popen) -> None:
    """SIGTERM to the worker's process group (a warm shutdown), SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def purge_rabbitmq(url: str) -> None:
    """Drop messages an earlier, interrupted run may have left in the queue."""
    from kombu import Connection

    from tagger.jobs.celery_app import TASK_QUEUE

    with Connection(url) as conn:
        channel = conn.channel()
        try:
            channel.queue_purge(TASK_QUEUE)
        except Exception:  # noqa: BLE001 - the queue does not exist yet
            pass


BROKERS = {
    "embedded": lambda: "embedded",
    "redis": lambda: (need_service("Redis", "127.0.0.1", 6379), flush_redis(REDIS_URL), REDIS_URL)[-1],
    "rabbitmq": lambda: (need_service("RabbitMQ", "127.0.0.1", 5672), purge_rabbitmq(RABBITMQ_URL),
                         RABBITMQ_URL)[-1],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home, log_path, *args: str, **env: str) -> tuple[subprocess.Popen, int]:
    """A real ``tagscope serve`` on a free port (``env``: its TAGSCOPE_ settings), in its own process
    group: (process, port) once it answers."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tagscope", "serve", "--port", str(port), *args], cwd=ROOT,
                                env=tagscope_env(home, **env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    token = env.get("TAGSCOPE_ACCESS_TOKEN")
    status = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                    headers={"Authorization": f"Bearer {token}"} if token else {})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(status, timeout=2).close()
            return proc, port
        except OSError:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.3)
    raise AssertionError("tagscope serve did not start: " + log_path.read_text())


def two_stream_bundle(path: Path) -> Path:
    """The bundled CLIP with MKT's two-stream head switched on (top-2 patches): a bundle with a
    local stream, without training one."""
    from mkt.bundle import load_bundle, save_bundle
    from mkt.factory import SYNTHETIC_BUNDLE

    bundle = load_bundle(SYNTHETIC_BUNDLE)
    bundle.kind, bundle.head = "mkt", {"local_top_k": 2, "local_weight": 1.0}
    bundle.meta.pop("relevance", None)  # constants fitted for the plain CLIP's scores do not hold for this head
    save_bundle(bundle, path)
    return path


def stored(url: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the stored embeddings of tagged images, by id."""
    from sqlalchemy import select

    from core.db import TAGGED, Embedding, Image, ModelVersion, get_database
    from indexer.store import from_bytes

    with get_database(url).session() as s:
        dim = s.scalars(select(ModelVersion.embed_dim)).one()
        rows = s.execute(select(Embedding.image_id, Embedding.vector).join(Image, Image.id == Embedding.image_id)
                         .where(Image.status == TAGGED).order_by(Embedding.image_id)).all()
    return np.asarray([r[0] for r in rows], dtype=np.int64), from_bytes([r[1] for r in rows], dim)


def assert_consistent(url: str) -> int:
    """SQL, tags and the store agree: a tagged image has exactly its version's embedding and tags;
    no other image keeps an embedding or tags. Returns the number of tagged images."""
    from sqlalchemy import select

    from core.db import TAGGED, Embedding, Image, Tag, get_database

    with get_database(url).session() as s:
        tagged = dict(s.execute(select(Image.id, Image.model_version_id).where(Image.status == TAGGED)).all())
        embedded = s.execute(select(Embedding.image_id, Embedding.model_version_id)).all()
        tag_images = set(s.scalars(select(Tag.image_id).distinct()))
    assert sorted(i for i, _ in embedded) == sorted(tagged)  # one embedding per tagged image, none else
    assert all(tagged[i] == mv for i, mv in embedded)
    assert tag_images == set(tagged)
    return len(tagged)


def as_unprivileged(fn, *args):
    """Run ``fn(*args)`` in a child that cannot bypass file permissions (root drops to nobody)."""

    def child(conn, *a):
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        try:
            conn.send(("ok", fn(*a)))
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            conn.send(("error", repr(exc)))

    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, sub = ctx.Pipe()
    proc = ctx.Process(target=child, args=(sub, *args))
    proc.start()
    status, value = parent.recv()
    proc.join()
    assert status == "ok", value
    return value


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
def collection(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """A folder of valid and broken image files of every kind (tests/weird_images.py), with its manifest."""
    from tests.weird_images import write_weird_collection

    root = tmp_path_factory.mktemp("weird")
    return root, write_weird_collection(root)


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
