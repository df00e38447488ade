"""The index file's faults (issue 22): a truncated or corrupted file is found on load, set aside and
rebuilt from the store while searches are answered exactly from the store (a server: no 500s, its
status says so; `tagscope search`: one line on stderr); a full disk while saving keeps the old
file whole, leaves no temporary file, logs the error and does not move the copy's position, so
the next merge saves the same entries again. Real files, real FAISS, real processes."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.schema import Image
from core.settings import load_settings
from indexer import files, store
from indexer import log as index_log
from indexer.damage import set_aside
from indexer.locks import file_lock, rebuild_lock_path
from indexer.sync import sync_index
from indexer.vector_index import IndexDamaged, VectorIndex
from migrations import get_database

from . import ROOT
from .commands import run_cli, tagscope_env
from .photos import photos_subset
from .servers import start_server, stop_process
from .waiting import wait_until

QUERY = "red circle"


def unit(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def flip_bytes(path: Path, at: float = 0.6, n: int = 8) -> None:
    """Corrupt ``n`` bytes inside the file (the vectors), keeping its size."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + n] = bytes(b ^ 0xFF for b in data[start:start + n])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def strip_checks(folder: Path, version: str) -> None:
    """The metadata as a release before checksums wrote it (no size, no CRC-32)."""
    meta = json.loads(files.meta_path(folder, version).read_text())
    files.meta_path(folder, version).write_text(json.dumps({k: v for k, v in meta.items()
                                                            if k not in ("bytes", "crc32")}))


def swap_in_other_index(folder: Path, version: str) -> None:
    """A valid index file of another size under unchanged, checksum-less metadata."""
    strip_checks(folder, version)
    other = VectorIndex(folder / "other", version, 16)
    other.add(np.arange(10), unit(10, seed=1))
    other.save()
    files.index_path(folder, version).write_bytes(files.index_path(other.folder, version).read_bytes())


DAMAGE = {
    "truncated": (truncate, "has .* bytes, its metadata says .* \\(truncated\\?\\)"),
    "bytes flipped": (flip_bytes, "does not match its checksum"),
    "truncated, metadata without checksum": (lambda p: (strip_checks(p.parent, "v1"), truncate(p)),
                                             "FAISS cannot read the index"),
    "another index, metadata without checksum": (lambda p: swap_in_other_index(p.parent, "v1"),
                                                 "holds 10 vectors, its metadata 50"),
    "metadata not JSON": (lambda p: files.meta_path(p.parent, "v1").write_text('{"version": "v1", "di'),
                          "cannot read the index metadata"),
}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_index_file_is_found_on_load_and_set_aside(tmp_path, how):
    damage, message = DAMAGE[how]
    index = VectorIndex(tmp_path, "v1", 16)
    index.add(np.arange(50), unit(50))
    index.position = 7
    index.save()
    assert len(VectorIndex.open(tmp_path, "v1", 16)) == 50  # the checks pass on a whole file
    damage(index.path)
    with pytest.raises(IndexDamaged, match=message) as caught:
        VectorIndex.open(tmp_path, "v1", 16)
    assert "\n" not in str(caught.value) and str(caught.value).endswith(
        "run `tagscope index rebuild` (it rebuilds the index from the stored embeddings)")
    # set aside under the index lock: no file, a record of why (without the folder's path)
    assert set_aside(tmp_path, "v1", 16, str(caught.value))
    assert not index.path.exists() and files.damaged_path(tmp_path, "v1").exists()
    record = files.damage_record(tmp_path, "v1")
    assert record["error"] and str(tmp_path) not in record["error"]
    assert not set_aside(tmp_path, "v1", 16, "again")  # nothing left to set aside
    index.save()  # a rebuilt copy replaces it: the record goes
    assert files.damage_record(tmp_path, "v1") == {} and len(VectorIndex.open(tmp_path, "v1", 16)) == 50


def test_a_whole_file_read_between_a_writers_two_renames_is_not_set_aside(tmp_path):
    """Index and metadata are renamed one after the other: a reader between the two sees a pair
    that disagrees. Under the index lock (writers hold it) the pair agrees again: nothing moves."""
    index = VectorIndex(tmp_path, "v1", 16)
    index.add(np.arange(50), unit(50))
    index.save()
    meta = files.meta_path(tmp_path, "v1").read_text()
    index.add(np.arange(50, 60), unit(10, seed=2))
    index.save()
    new_meta = files.meta_path(tmp_path, "v1").read_text()
    files.meta_path(tmp_path, "v1").write_text(meta)  # as between the renames
    with pytest.raises(IndexDamaged):
        VectorIndex.open(tmp_path, "v1", 16)
    files.meta_path(tmp_path, "v1").write_text(new_meta)  # the writer's second rename
    assert not set_aside(tmp_path, "v1", 16, "seemed damaged")
    assert index.path.exists() and len(VectorIndex.open(tmp_path, "v1", 16)) == 60


def tag(home: Path, env: dict[str, str], synthetic_photos: Path, tmp_path: Path, n: int) -> str:
    """Tag ``n`` photos; the model version's id."""
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", n)), home=home, **env)
    rows = json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)
    return rows[0]["version"]


def search(home: Path, env: dict[str, str]) -> tuple[list[tuple[int, float]], str]:
    proc = run_cli("search", QUERY, "-k", "8", "--json", home=home, **env)
    hits = json.loads(proc.stdout)["results"]
    return [(h["image_id"], round(h["score"], 4)) for h in hits], proc.stderr


def index_status(home: Path, env: dict[str, str]) -> dict:
    return json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)[0]


@pytest.mark.worker
def test_tagscope_search_on_a_damaged_index_answers_from_the_store_and_rebuilds_it(
        home_env, synthetic_photos, tmp_path):
    home, env, _ = home_env
    version = tag(home, env, synthetic_photos, tmp_path, 30)
    expected, quiet = search(home, env)
    assert len(expected) == 8 and "note:" not in quiet
    truncate(files.index_path(home / "index", version))
    answered, stderr = search(home, env)
    assert answered == expected  # exact, from the stored embeddings
    notes = [line for line in stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "damaged" in notes[0] and "truncated" in notes[0], stderr
    assert "being rebuilt in the background" in notes[0] or "tagscope index rebuild" in notes[0]
    # the search started the rebuild in the background: the copy is whole again
    done = wait_until(lambda: (lambda r: r["path"] and r["fresh"] and r["damaged"] is None and r)(
        index_status(home, env)), timeout=60, every=0.3, what="the damaged index rebuilt")
    assert done["size"] == 30 and "the index file was damaged" in done["rebuild"]["reason"]
    assert files.damaged_path(home / "index", version).exists()
    again, stderr = search(home, env)
    assert again == expected and "note:" not in stderr


def get(url: str, path: str, **params) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def api(url: str, path: str, **params) -> dict:
    status, body = get(url, path, **params)
    assert status == 200, (status, body[:500])
    return json.loads(body)


def served(url: str) -> list[tuple[int, float]]:
    return [(h["image_id"], round(h["score"], 4)) for h in api(url, "/api/search", q=QUERY, k=8)["results"]]


@pytest.mark.worker
def test_a_server_answers_from_the_store_while_its_damaged_index_is_rebuilt(home_env, synthetic_photos, tmp_path):
    home, env, _ = home_env
    version = tag(home, env, synthetic_photos, tmp_path, 30)
    expected, _ = search(home, env)
    flip_bytes(files.index_path(home / "index", version))
    folder = home / "index"
    # A rebuild of this version runs elsewhere (held here): the server's waits for it
    with file_lock(rebuild_lock_path(folder, version)):
        proc, url = start_server(home, **env)
        try:
            assert served(url) == expected  # exact, from the stored embeddings: no 500
            assert get(url, "/", q=QUERY)[0] == 200
            assert get(url, "/api/search", q="blue star", taken="2000..2099")[0] == 200
            status = api(url, "/api/status")["index"]
            assert status["state"] == "building" and "does not match its checksum" in status["damaged"]
            assert "path" not in status and str(home) not in status["damaged"]
            local = index_status(home, env)
            assert local["path"] is None and local["damaged"]["rebuilding"] and local["rebuild"]["running"]
            assert "being rebuilt" in run_cli("index", "status", home=home, **env).stdout
            assert files.damaged_path(folder, version).exists()
            assert served(url) == expected
        except BaseException:
            os.killpg(proc.pid, signal.SIGTERM)
            raise
    try:
        # released: the server's catch-up rebuilds the copy and reloads it
        wait_until(lambda: api(url, "/api/status")["index"]["state"] == "ready", timeout=60, every=0.3,
                   what="the server's copy rebuilt")
        status = api(url, "/api/status")["index"]
        assert (status["size"], status["fresh"], status["damaged"]) == (30, True, None)
        assert served(url) == expected
        assert len(VectorIndex.open(folder, version, local["dim"])) == 30
    finally:
        stop_process(proc)
    log = (home / "serve.log").read_text()
    assert " 500 " not in log and "Traceback" not in log, log[-3000:]
    assert "set aside" in log


CHILD = """
import json, logging, sys
from migrations import get_database
from core.settings import load_settings
from indexer import store
from indexer.sync import maybe_sync, sync_index
from indexer.vector_index import IndexSaveFailed
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
settings = load_settings()
db = get_database(settings.db_url)
mv = store.find_version(db, sys.argv[1])
out = {"merge": maybe_sync(settings, db, mv)}  # a job's merge: logs the error, tagging goes on
try:
    sync_index(settings, db, mv)
except IndexSaveFailed as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def limit_file_size(limit: int):
    def apply() -> None:  # in the child: writes past ``limit`` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_while_saving_keeps_the_old_index_and_the_next_merge_saves_again(
        home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    version = tag(home, env, synthetic_photos, tmp_path, 30)
    settings = load_settings(environ={}, home=str(home), database_url=url)
    db = get_database(url)
    mv = store.find_version(db, version)
    folder = settings.index_dir
    with db.session() as s:
        ids = s.scalars(select(Image.id).order_by(Image.id)).all()
        store.drop(s, ids[:2])  # two photos leave the index, three are re-embedded
        store.mark_images_changed(s, ids[2:5])
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".faiss", ".json")}
    position = files.saved_position(folder, version)[1]
    name = index_log.copy_name(folder)
    reported = {c.name: c.position for c in index_log.copies(db, mv.id)}[name]
    assert index_status(home, env)["pending_changes"] == 5
    # a merge in a process whose files cannot grow past half the index: as on a full disk
    size = files.index_path(folder, version).stat().st_size
    child = subprocess.run([sys.executable, "-c", CHILD, version], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env=tagscope_env(home, PYTHONPATH=str(ROOT), **env),
                           preexec_fn=limit_file_size(size // 2))
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["merge"] is None
    assert "could not save the index" in child.stderr and "File too large" in child.stderr, child.stderr
    assert out["error"].startswith(f"could not save the index {files.index_path(folder, version)} (File too large)")
    assert "free space in" in out["error"] and "\n" not in out["error"]
    # the old index is whole and unchanged, no temporary file is left, the position did not move
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".faiss", ".json")} == before
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert files.saved_position(folder, version)[1] == position
    assert {c.name: c.position for c in index_log.copies(db, mv.id)}[name] == reported
    assert len(VectorIndex.open(folder, version, mv.dim)) == 30
    status = index_status(home, env)
    assert (status["pending_changes"], status["fresh"]) == (5, False)
    # room again: the next merge applies the same entries and saves
    assert sync_index(settings, db, mv) == 5
    index = VectorIndex.open(folder, version, mv.dim)
    assert len(index) == 28 and not index.contains(ids[0]) and index.contains(ids[2])
    assert index.position == index_log.head(db, mv.id) > position
    assert index_status(home, env)["fresh"]
