"""A second machine's command line (issue 30): two homes (two machines, each with its own index
copy) share one database. Machine A tags; machine B, with no server running, answers `tagscope
search`, `saved run`, `duplicates` and `show` as A does: its first search answers exactly from the
store while its copy is built in the background, later ones bring the copy up to date from the
index change log first (more tagging on A), and a truncated copy is answered around and rebuilt.
The command line only (in-process, as a user would type it); SQLite (one file for both homes) and
PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.variants import write_variants

from .commands import run_cli
from .photos import read_labels_jsonl
from .waiting import wait_until

pytestmark = pytest.mark.worker  # B's first search builds its copy in a process of its own

QUERY = "red circle"
BATCHES = (40, 80, 20)  # photos A tags each time


@pytest.fixture(params=["sqlite", "postgresql"])
def two_homes(request, tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """Machine A's home, machine B's home, and the environment both share (one database)."""
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    a.mkdir()
    b.mkdir()
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{(tmp_path / 'shared.sqlite').resolve()}"
    env = {"TAGSCOPE_DATABASE_URL": url, "TAGSCOPE_MODEL": "synthetic"}
    run_cli("db", "upgrade", home=a, **env)
    return a, b, env


def batch(synthetic_photos: Path, folder: Path, start: int, n: int) -> Path:
    """Photos ``start`` to ``start + n`` of the shared synthetic collection, in a folder of their own."""
    folder.mkdir(parents=True)
    for name in sorted(read_labels_jsonl(synthetic_photos))[start:start + n]:
        os.link(synthetic_photos / name, folder / name)
    return folder


def search(home: Path, env: dict[str, str], *args: str) -> tuple[list[tuple[int, float]], str]:
    proc = run_cli(*args, "--json", home=home, **env)
    hits = json.loads(proc.stdout)["results"]
    return [(h["image_id"], round(h["score"], 4)) for h in hits], proc.stderr


def top20(home: Path, env: dict[str, str]) -> tuple[list[tuple[int, float]], str]:
    return search(home, env, "search", QUERY, "-k", "20")


def index_status(home: Path, env: dict[str, str]) -> dict:
    return json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)[0]


def current(home: Path, env: dict[str, str], stored: int) -> dict | None:
    """B's copy, once it holds every stored vector and the log's head (None before)."""
    st = index_status(home, env)
    ok = st["path"] and st["fresh"] and st["size"] == stored and st["position"] == st["log"]["head"] \
        and st["damaged"] is None
    return st if ok else None


def in_folder(home: Path, env: dict[str, str], folder: Path) -> list[tuple[int, float]]:
    return search(home, env, "search", QUERY, "--folder", str(folder), "-k", "200")[0]


def test_a_second_machines_command_line_answers_as_the_first(two_homes, synthetic_photos, tmp_path):
    a, b, env = two_homes
    first = batch(synthetic_photos, tmp_path / "photos" / "first", 0, BATCHES[0])
    write_variants(first / "variants", 2, 0, seed=5, kinds=("resized", "jpeg"))  # near-duplicates
    run_cli("tag", str(first), home=a, **env)
    stored = index_status(a, env)["stored_embeddings"]
    expected, _ = top20(a, env)
    assert len(expected) == 20

    # B has no copy: it answers exactly from the store while its copy is built in the background
    answered, stderr = top20(b, env)
    assert answered == expected, stderr
    assert "no results" not in stderr and "answering from the stored embeddings" in stderr, stderr
    wait_until(lambda: current(b, env, stored), timeout=120, every=0.3, what="B's copy built")
    answered, stderr = top20(b, env)
    assert answered == expected and "note:" not in stderr, stderr  # from its own copy now

    # the other readers on B
    run_cli("saved", "add", "reds", QUERY, home=a, **env)
    assert search(b, env, "saved", "run", "reds")[0] == search(a, env, "saved", "run", "reds")[0] == expected
    dupes_a, dupes_b = (json.loads(run_cli("duplicates", "--json", home=h, **env).stdout) for h in (a, b))
    assert dupes_b == dupes_a and dupes_b["total_groups"] >= 1
    one = expected[0][0]
    assert json.loads(run_cli("show", str(one), "--json", home=b, **env).stdout) == \
        json.loads(run_cli("show", str(one), "--json", home=a, **env).stdout)

    # more tagging on A: B's copy catches up from the change log before it answers
    second = batch(synthetic_photos, tmp_path / "photos" / "second", BATCHES[0], BATCHES[1])
    run_cli("tag", str(second), home=a, **env)
    expected, _ = top20(a, env)
    new = {i for i, _ in in_folder(a, env, second)}
    assert len(new) == BATCHES[1] and {i for i, _ in expected} & new  # the new photos are in the answer
    answered, stderr = top20(b, env)
    assert answered == expected, stderr
    assert current(b, env, stored + BATCHES[1]), index_status(b, env)  # caught up, not answered around
    assert search(b, env, "saved", "run", "reds")[0] == expected

    # more tagging on A, and B's index file truncated: B still answers as A does
    third = batch(synthetic_photos, tmp_path / "photos" / "third", sum(BATCHES[:2]), BATCHES[2])
    run_cli("tag", str(third), home=a, **env)
    expected, _ = top20(a, env)
    path = Path(index_status(b, env)["path"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    answered, stderr = top20(b, env)
    assert answered == expected, stderr
    assert "damaged" in stderr and "no results" not in stderr, stderr
    assert in_folder(b, env, third) == in_folder(a, env, third) and len(in_folder(a, env, third)) == BATCHES[2]
    wait_until(lambda: current(b, env, stored + sum(BATCHES[1:])), timeout=120, every=0.3, what="B's copy rebuilt")
    answered, stderr = top20(b, env)
    assert answered == expected and "note:" not in stderr, stderr
