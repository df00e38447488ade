"""Deleting what the embedded broker has delivered.

kombu's SQL transport (``TAGSCOPE_BROKER_URL=embedded``: ``<home>/broker.sqlite``) never deletes
a message it hands out: it marks the row invisible (``visible = false``) and keeps it, payload and
all. A nightly job adds a row per task, beat one per tick (every 5 s by default: over 6 million a
year), and every poll of every worker (each second, inside a write transaction on SQLite) reads
past them. Nothing reads an invisible row again: an unacknowledged message that goes back to the
queue (a warm shutdown) is written anew, and one a killed consumer held is lost either way (the
sweeper sends its task again). So the sweeper (:mod:`tagger.jobs.sweeper`) deletes them, a
bounded batch a pass, so that no pass holds the broker's write lock for long.
"""

from __future__ import annotations

import threading

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

MESSAGE_TABLE = "kombu_message"  # kombu's default (the transport option ``message_tablename``)
BATCH = 5000  # rows deleted per statement; a pass repeats it up to :data:`MAX_BATCHES` times
MAX_BATCHES = 20

_engines: dict[str, Engine] = {}
_guard = threading.Lock()


def is_sql_broker(url: str) -> bool:
    """True for a broker URL of kombu's SQL transport (``sqla+<database URL>``)."""
    return url.startswith("sqla+")


def _engine(url: str) -> Engine:
    with _guard:
        engine = _engines.get(url)
        if engine is None:
            args = {"timeout": 30} if url.startswith("sqla+sqlite") else {}
            engine = _engines[url] = create_engine(url.removeprefix("sqla+"), connect_args=args,
                                                   pool_pre_ping=True)
        return engine


def delivered(url: str) -> int:
    """How many delivered (invisible) messages the SQL broker at ``url`` keeps."""
    engine = _engine(url)
    if not inspect(engine).has_table(MESSAGE_TABLE):
        return 0
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {MESSAGE_TABLE} WHERE visible = :no"),
                                {"no": False}).scalar_one())


def delete_delivered(url: str, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> int:
    """Delete up to ``batch * max_batches`` delivered messages from the SQL broker at ``url``, a
    transaction per ``batch`` (the oldest first); how many it deleted. Messages still queued
    (visible) are never touched. 0 when the broker has no message table yet."""
    engine = _engine(url)
    if not inspect(engine).has_table(MESSAGE_TABLE):
        return 0
    statement = text(f"DELETE FROM {MESSAGE_TABLE} WHERE id IN (SELECT id FROM {MESSAGE_TABLE} "
                     "WHERE visible = :no ORDER BY id LIMIT :n)")
    total = 0
    for _ in range(max_batches):
        with engine.begin() as conn:
            n = conn.execute(statement, {"no": False, "n": batch}).rowcount
        total += n
        if n < batch:
            break
    return total
