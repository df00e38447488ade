"""Shared fixtures: data directories, databases (SQLite, PostgreSQL), a tagged synthetic collection;
and the tier rules: which marker a test needs. The helpers live in modules by concern (listed in
tests/__init__.py); a test imports each from its module.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from .commands import run_cli
from .databases import postgres_database

# exported image towers (mkt.runtime): one folder for the whole run, each model exported once
os.environ.setdefault("TAGSCOPE_RUNTIME_CACHE", str(Path(tempfile.gettempdir()) / f"tagscope-runtimes-{os.getpid()}"))
# The suite sets what it relies on, whatever the user's shell holds: no TAGSCOPE_* setting of the user's
# (core.settings), only the suite's own variables; the Hugging Face hub offline, as tagscope_env has it.
for _name in [n for n in os.environ if n == "TRANSFORMERS_OFFLINE" or n.startswith("TAGSCOPE_") and not n.startswith(
        ("TAGSCOPE_TEST_", "TAGSCOPE_REQUIRE_SERVICES", "TAGSCOPE_RUNTIME_CACHE", "TAGSCOPE_SCREENSHOTS"))]:
    del os.environ[_name]
os.environ["HF_HUB_OFFLINE"] = "1"  # a test of the online path unsets it


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


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with postgres_database() as url:
        yield url


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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_at_head(request, tmp_path) -> str:
    """The URL of a database upgraded to the schema's head, on SQLite and on PostgreSQL."""
    from core.db import Database
    from migrations import upgrade

    url = f"sqlite:///{tmp_path}/t.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    upgrade(db)
    db.dispose()
    return url
