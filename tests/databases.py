"""Databases for tests: a fresh PostgreSQL database of one test's own, and what a test reads from
any database it tagged into (tagged images, stored embeddings, the store's consistency)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .services import POSTGRES_ADMIN_URL, need_service


@contextmanager
def postgres_database() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    from sqlalchemy import create_engine, text

    name = f"tagscope_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    forget_database(url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def forget_database(url: str) -> None:
    """Close this process's connections to the database at ``url`` (before it is dropped or its
    server stopped for good)."""
    from migrations import _databases

    db = _databases.pop(url, None)
    if db is not None:
        db.dispose()


def tagged_count(url: str) -> int:
    """Tagged images in the database at ``url``; 0 while its schema does not exist yet. Any other
    error (a wrong URL, a server that is down) is raised."""
    from sqlalchemy import func, inspect, select

    from core.schema import TAGGED, Image
    from migrations import get_database

    db = get_database(url, migrate=False)
    with db.session() as s:
        if not inspect(s.connection()).has_table("images"):
            return 0
        return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == TAGGED)) or 0)


def stored(url: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the stored embeddings of tagged images, by id."""
    from sqlalchemy import select

    from core.schema import TAGGED, Embedding, Image, ModelVersion
    from indexer.store import from_bytes
    from migrations import get_database

    with get_database(url).session() as s:
        dim = s.scalars(select(ModelVersion.embed_dim)).one()
        rows = s.execute(select(Embedding.image_id, Embedding.vector).join(Image, Image.id == Embedding.image_id)
                         .where(Image.status == TAGGED).order_by(Embedding.image_id)).all()
    return np.asarray([r[0] for r in rows], dtype=np.int64), from_bytes([r[1] for r in rows], dim)


def assert_consistent(url: str) -> int:
    """SQL, tags and the store agree: a tagged image has exactly its version's embedding and tags;
    no other image keeps an embedding or tags. Returns the number of tagged images."""
    from sqlalchemy import select

    from core.schema import TAGGED, Embedding, Image, Tag
    from migrations import get_database

    with get_database(url).session() as s:
        tagged = dict(s.execute(select(Image.id, Image.model_version_id).where(Image.status == TAGGED)).all())
        embedded = s.execute(select(Embedding.image_id, Embedding.model_version_id)).all()
        tag_images = set(s.scalars(select(Tag.image_id).distinct()))
    assert sorted(i for i, _ in embedded) == sorted(tagged)  # one embedding per tagged image, none else
    assert all(tagged[i] == mv for i, mv in embedded)
    assert tag_images == set(tagged)
    return len(tagged)


def copy_home(source, target, *skip: str) -> None:
    """A copy of a data directory that other processes may be using (but its server's record, logs and
    the ``skip`` patterns), its SQLite files copied through
    SQLite's backup API. Copying a database file with open()/close() in a process that holds a
    connection to it drops that process's POSIX locks on it: another process then takes itself
    for the last user, checkpoints and deletes the -wal and -shm files under the open connection,
    and later queries fail with "disk I/O error" or lose writes (seen in the suite)."""
    import shutil
    import sqlite3
    from pathlib import Path

    source, target = Path(source), Path(target)
    live = ("*.sqlite", "*.sqlite-wal", "*.sqlite-shm", "*.sqlite-journal", "server.json", "*.log")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*live, *skip))
    for database in source.rglob("*.sqlite"):
        with sqlite3.connect(database) as src, sqlite3.connect(target / database.relative_to(source)) as dst:
            src.backup(dst)
        src.close()
        dst.close()
