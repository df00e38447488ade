"""The index change log: every copy of a version's index follows the embedding store through it.

Storing, replacing or dropping an embedding appends an entry (``index_changes``: an id and the
image) in the same transaction (:func:`append`). Entries are numbered in commit order: on
PostgreSQL the appending transaction first takes a transaction-level advisory lock, so no
transaction can take a number and commit after one that took a later number (a reader would
otherwise pass over an entry committed late); SQLite has one writer at a time. So any reader sees
a prefix of the log, and a copy's place in it is one number.

Each copy of the index (a search server's, a worker's, the command line's: ``name`` is machine
and folder) records in its file the last entry it applied (:attr:`VectorIndex.position`) and
tells the database (``index_copies``, :func:`report`). Copies never consume each other's entries:
entries are dropped only once every copy heard from within ``KEEP_S`` has applied them
(:func:`trim`), and the highest dropped entry is the log's floor. A copy behind the floor (silent
for longer than that) rebuilds from the store; a copy that is current has ``position == head``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from core.db import Database
from core.pg_copy import can_copy, copy_rows
from core.schema import IndexChange, IndexCopy, IndexLogFloor, utcnow

KEEP_S = 7 * 24 * 3600  # a copy silent for longer no longer holds log entries back
READ_BATCH = 50_000  # entries read per round
REPORT_EVERY_S = 60  # an unchanged copy says it is alive at most this often
_LOCK_KEY = 0x7A6C6F67  # pg_advisory_xact_lock key of the log's writers ("zlog")


def append(s: Session, entries: list[dict]) -> None:
    """Append ``entries`` ({model_version_id, image_id}) to the log in the caller's transaction."""
    if not entries:
        return
    s.connection()  # begins the session's transaction if it has not begun
    transaction = s.get_transaction()
    if s.get_bind().dialect.name == "postgresql" and s.info.get("index_log_locked") is not transaction:
        # held to the commit: numbers are taken and made visible in the same order
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        s.info["index_log_locked"] = transaction  # once per transaction
    if can_copy(s):  # numbered in the entries' order, as the INSERT's rows are
        copy_rows(s, IndexChange.__table__, entries)
    else:
        s.execute(insert(IndexChange), entries)


def head(db: Database, model_version_id: int) -> int:
    """The last entry of a version's log (its floor when the log is empty)."""
    with db.session() as s:
        last = s.scalar(select(func.max(IndexChange.id)).where(IndexChange.model_version_id == model_version_id))
    return int(last) if last is not None else floor(db, model_version_id)


def floor(db: Database, model_version_id: int) -> int:
    with db.session() as s:
        value = s.scalar(select(IndexLogFloor.floor).where(IndexLogFloor.model_version_id == model_version_id))
    return int(value or 0)


def since(db: Database, model_version_id: int, position: int, limit: int = READ_BATCH) -> list[tuple[int, int]]:
    """(entry, image id) after ``position``, in order, at most ``limit``."""
    with db.session() as s:
        return [(int(i), int(image)) for i, image in s.execute(
            select(IndexChange.id, IndexChange.image_id)
            .where(IndexChange.model_version_id == model_version_id, IndexChange.id > position)
            .order_by(IndexChange.id).limit(limit))]


def behind(db: Database, model_version_id: int, position: int) -> int:
    """How many entries a copy at ``position`` has not applied."""
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(IndexChange).where(
            IndexChange.model_version_id == model_version_id, IndexChange.id > position)) or 0)


def copy_name(folder: str | os.PathLike) -> str:
    """This machine's copy in ``folder``: ``host:/absolute/folder``."""
    return f"{socket.gethostname()}:{Path(folder).resolve()}"


def report(db: Database, name: str, model_version_id: int, position: int, vectors: int, role: str) -> None:
    """Record that the copy ``name`` has applied the log up to ``position`` (no write when nothing
    changed since a report less than ``REPORT_EVERY_S`` old: a server checks every few seconds)."""
    with db.session() as s:
        row = s.get(IndexCopy, (name, model_version_id))
        if row is not None and (row.position, row.vectors) == (position, vectors) and (role or row.role) == row.role \
                and _aware(row.seen_at) > utcnow() - timedelta(seconds=REPORT_EVERY_S):
            return
        if row is None:
            s.add(IndexCopy(name=name, model_version_id=model_version_id, position=position, vectors=vectors,
                            role=role, seen_at=utcnow()))
        else:
            row.position, row.vectors, row.role, row.seen_at = position, vectors, role or row.role, utcnow()


@dataclass(frozen=True)
class Copy:
    name: str
    position: int
    vectors: int
    role: str
    seen_at: str
    live: bool

    def to_json(self) -> dict:
        return {"name": self.name, "position": self.position, "vectors": self.vectors, "role": self.role,
                "seen_at": self.seen_at, "live": self.live}


def copies(db: Database, model_version_id: int, keep_s: float = KEEP_S) -> list[Copy]:
    """The copies of a version's index the database has heard of, most recent first."""
    cutoff = utcnow() - timedelta(seconds=keep_s)
    with db.session() as s:
        rows = s.scalars(select(IndexCopy).where(IndexCopy.model_version_id == model_version_id)
                         .order_by(IndexCopy.seen_at.desc())).all()
        return [Copy(r.name, int(r.position), int(r.vectors), r.role, r.seen_at.isoformat(),
                     _aware(r.seen_at) >= cutoff) for r in rows]


def _aware(value):
    from core.schema import as_utc

    return as_utc(value)


def trim(db: Database, model_version_id: int, keep_s: float = KEEP_S) -> int:
    """Drop the entries every live copy has applied (all of them when no copy is live: a new
    copy builds from the store); returns the new floor."""
    live = [c.position for c in copies(db, model_version_id, keep_s) if c.live]
    target = min(live) if live else head(db, model_version_id)
    with db.session() as s:
        row = s.get(IndexLogFloor, model_version_id)
        current = int(row.floor) if row is not None else 0
        if target <= current:
            return current
        s.execute(delete(IndexChange).where(IndexChange.model_version_id == model_version_id,
                                            IndexChange.id <= target))
        if row is None:
            s.add(IndexLogFloor(model_version_id=model_version_id, floor=target))
        else:
            row.floor = target
    return target
