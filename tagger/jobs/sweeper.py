"""The sweeper: every worker process hands out again the work dead workers held.

A thread in each ``tagscope worker`` (started when the worker is ready) runs :func:`sweep`
every quarter lease:

1. tasks whose lease expired (their worker died: ``kill -9``, OOM, a lost machine) go back to
   the queue and are sent again, by exactly one sweeper (:func:`tagger.jobs.leases.expire`);
2. once this worker has sat idle, consuming, for :data:`IDLE_PROOF_S`, queued tasks nobody
   claimed for a quarter lease are sent again: a message still in the queue would have been
   given to this idle worker (prefetch 1) and claimed, so theirs is lost (kombu's SQL transport,
   the embedded broker, drops what a killed consumer held; Redis without persistence drops its
   whole queue when it restarts; a sweeper killed between putting a task back and sending it).
   Not "idle for a whole lease": a worker that still had a queue to work through only started
   waiting for that lease once the queue was empty, so a lost task came back more than a lease
   after the rest of the job (76 s to over 120 s after the last restart, lease 60 s);
3. scans of scheduled jobs whose worker died are sent again (:mod:`tagger.jobs.start`);
4. running jobs whose tasks are all done but that nobody closed (the closing worker died
   between the two writes) are closed;
5. index changes nobody applied (the worker that was to merge them died) are merged;
6. on the embedded broker, messages it delivered are deleted (:mod:`tagger.jobs.broker_tidy`).

So a job survives killed workers within about a lease and a quarter of the last restart
(a lost message: a quarter lease after the queue drains, at least :data:`IDLE_PROOF_S`),
whatever the broker's own redelivery does (Redis: its visibility timeout, RabbitMQ: when the
connection drops). Messages sent twice are harmless: a task runs only under its lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from core.db import Database
from core.outage import outage_reason
from core.schema import IndexChange, ModelVersion
from core.settings import Settings
from indexer.store import StoreVersion
from indexer.sync import sync_index
from migrations import get_database
from tagger.jobs import broker_tidy, leases, rows
from tagger.jobs.close import close_job_if_complete
from tagger.jobs.task_names import SCAN_TASK, TAG_TASK

log = logging.getLogger(__name__)

RESEND_LIMIT = 16  # lost messages sent again per sweep
IDLE_PROOF_S = 5.0  # idle this long, a worker has polled the queue (embedded broker: every second), found it empty

_activity = {"busy": 0, "idle_since": time.monotonic()}
_guard = threading.Lock()


@contextmanager
def busy() -> Iterator[None]:
    """Wrap a task's run: while any runs in this process, the worker is not idle."""
    with _guard:
        _activity["busy"] += 1
    try:
        yield
    finally:
        with _guard:
            _activity["busy"] -= 1
            _activity["idle_since"] = time.monotonic()


def idle_for() -> float:
    """Seconds this process has run no task (0 while one runs)."""
    with _guard:
        return 0.0 if _activity["busy"] else time.monotonic() - _activity["idle_since"]


def sweep(app: Any, settings: Settings) -> dict[str, int]:
    """One pass (module docstring); returns how many of each it handled."""
    db = get_database(settings.db_url)
    lease = settings.task_lease
    expired = leases.expire(db)
    lost = leases.unclaimed(db, max(lease / 4, IDLE_PROOF_S), RESEND_LIMIT) if idle_for() >= IDLE_PROOF_S else []
    for job_id, task_id in expired + lost:
        app.send_task(TAG_TASK, args=(job_id, task_id))
    scans = leases.expired_scans(db, lease)
    for job_id in scans:
        app.send_task(SCAN_TASK, args=(job_id,))
    closed = [job_id for job_id in rows.running_job_ids(db) if close_job_if_complete(settings, db, job_id)]
    for mv in pending_index_versions(db) if settings.keep_index else ():
        sync_index(settings, db, mv, blocking=False, role="worker")
    counts = {"expired": len(expired), "lost": len(lost), "scans": len(scans), "closed": len(closed)}
    if any(counts.values()):
        log.warning("sweeper: sent again %d expired and %d lost task(s), %d scan(s); closed %d job(s)",
                    counts["expired"], counts["lost"], counts["scans"], counts["closed"])
    url = str(app.conf.broker_url or "")
    counts["delivered_deleted"] = broker_tidy.delete_delivered(url) if broker_tidy.is_sql_broker(url) else 0
    return counts


def pending_index_versions(db: Database) -> list[StoreVersion]:
    """Model versions with entries in the index change log (this machine's copy may lag them)."""
    with db.session() as s:
        pending = select(IndexChange.id).where(IndexChange.model_version_id == ModelVersion.id).exists()
        return [StoreVersion.of(row) for row in s.scalars(select(ModelVersion).where(pending))]


def start(app: Any, settings: Settings) -> threading.Thread:
    """The sweeper thread of a worker process (a daemon: it dies with the worker)."""

    with _guard:  # idle from now, when it starts consuming: not from when the module was imported
        _activity["idle_since"] = time.monotonic()

    def loop() -> None:
        while True:
            time.sleep(settings.task_lease / 4)
            try:
                sweep(app, settings)
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the sweeper
                if outage_reason(exc) is None:
                    log.exception("sweeper pass failed")
                else:  # a restart: one line, and the next pass does the work
                    log.warning("sweeper pass skipped: the database is unreachable (%s)", outage_reason(exc))

    thread = threading.Thread(target=loop, name="tagscope-sweeper", daemon=True)
    thread.start()
    return thread
