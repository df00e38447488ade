"""A damaged index file: set aside, rebuilt from the store, and searched around meanwhile.

:meth:`indexer.vector_index.VectorIndex.reload` checks a saved file before FAISS parses it (its
size and CRC-32 against the metadata saved beside it), then FAISS's own reading and the vector
count; any failure is :class:`~indexer.vector_index.IndexDamaged`. Whoever meets it calls
:func:`set_aside`: under the index lock (writers rename the file and its metadata in turn, so a
reader between the two renames sees a pair that disagrees: the check is made again under the
lock before anything moves) the file is renamed to ``<version>.faiss.damaged`` and
``<version>.damaged.json`` records why. This machine's copy then has no file: a merge
(:func:`indexer.sync.sync_index`) rebuilds it from the store, a search server's background
catch-up does so at once, and ``tagscope search`` starts ``python -m indexer.damage VERSION`` in
the background (:func:`start_rebuild`). Until a save replaces the file (which deletes the
record), searches are answered exactly from the store (:mod:`indexer.search.follow`). The same
process builds the copy of a machine that has none yet, or one that fell behind the change log's
floor, for a ``tagscope search`` there (:func:`indexer.search.follow.catch_up`).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from core.settings import Settings
from indexer import files
from indexer.locks import index_lock
from indexer.vector_index import REBUILD_HINT, IndexDamaged, VectorIndex

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
_children: list[subprocess.Popen] = []


def set_aside(folder: str | os.PathLike, version: str, dim: int, error: str, locked: bool = False) -> bool:
    """Rename ``version``'s damaged index file out of the way and record ``error``, when the file
    is still damaged under the index lock (taken unless the caller holds it: ``locked``). False
    when a writer had replaced it meanwhile (a good file now) or it cannot be moved."""
    if not locked:
        with index_lock(folder, version):
            return set_aside(folder, version, dim, error, locked=True)
    path = files.index_path(folder, version)
    if not path.exists():
        return False
    try:
        VectorIndex.open(folder, version, dim)
        return False  # read between a writer's two renames: the pair agrees now
    except IndexDamaged as exc:
        error = str(exc).removesuffix(f": {REBUILD_HINT}").replace(f"{Path(folder)}{os.sep}", "")  # no paths
    try:
        os.replace(path, files.damaged_path(folder, version))
        files.write_damage_record(folder, version, {"error": error, "at": time.time()})
    except OSError as exc:
        log.error("index %s is damaged and cannot be set aside (%s): %s", version, exc, error)
        return False
    log.error("index %s set aside as %s: %s", version, files.damaged_path(folder, version).name, error)
    return True


def start_rebuild(settings: Settings, version: str) -> int:
    """Start ``python -m indexer.damage VERSION`` (a rebuild from the store, niced) in the
    background, note its pid in the damage record, and return it."""
    _children[:] = [p for p in _children if p.poll() is None]
    folder = settings.index_dir
    folder.mkdir(parents=True, exist_ok=True)  # a machine with no copy yet may have no folder
    env = dict(os.environ, TAGSCOPE_HOME=str(settings.home.resolve()), TAGSCOPE_DATABASE_URL=settings.db_url,
               TAGSCOPE_INDEX_FOLDER=str(folder.resolve()), TAGSCOPE_INDEX_KIND=settings.index_kind,
               OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(Path(folder) / f"{version}.rebuild.log", "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "indexer.damage", version], env=env,
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, close_fds=True)
    _children.append(proc)
    record = files.damage_record(folder, version)
    if record:
        files.write_damage_record(folder, version, record | {"pid": proc.pid})
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    """``python -m indexer.damage VERSION``: build this machine's copy from the store when it must
    be (:func:`indexer.status.needs_build`: its damaged file was set aside, it has none, it fell
    behind the log's floor)."""
    from core.settings import load_settings
    from indexer import store
    from indexer.rebuild import NICE, rebuild_index
    from indexer.status import needs_build
    from migrations import get_database

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    try:
        os.nice(NICE)
    except OSError:
        pass
    settings = load_settings()
    if files.rebuild_status(settings.index_dir, args.version).get("running"):
        log.info("index %s: a rebuild runs", args.version)
        return 0
    db = get_database(settings.db_url)
    mv = store.find_version(db, args.version)
    if mv is None:
        log.info("index %s: no such model version", args.version)
        return 0
    reason = needs_build(settings.index_dir, db, mv)
    if reason is None:
        log.info("index %s: already rebuilt", args.version)
        return 0
    try:
        rebuild_index(settings, db, mv, reason=reason)
    except Exception:  # noqa: BLE001 - recorded in the rebuild record; searches use the store meanwhile
        log.exception("index %s: building the index failed (%s)", args.version, reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
