"""What delivered messages kept by the embedded broker cost every worker's poll.

    python -m bench.broker_poll [--kept 200000] [--polls 20]

kombu's SQL transport (``TAGSCOPE_BROKER_URL=embedded``) keeps every message it delivered, marked
invisible; each worker polls its queue every second, on SQLite inside ``BEGIN IMMEDIATE`` (the
broker's write lock), and that poll reads past them. Measured side by side in one run on a real
kombu broker in a temporary folder: an empty poll with ``--kept`` delivered rows (a row per task,
one per beat tick: beat's 5 s tick alone leaves ~17,000 a day), then the same poll after the
sweeper's tidy (:func:`tagger.jobs.broker_tidy.delete_delivered`). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from queue import Empty

QUEUE = "tagscope"


def empty_poll_ms(url: str, polls: int) -> float:
    """Mean milliseconds of one poll of an empty queue (kombu's own ``_get``, as a worker polls)."""
    from kombu import Connection

    with Connection(url) as conn:
        channel = conn.default_channel
        start = time.perf_counter()
        for _ in range(polls):
            try:
                channel._get(QUEUE)
            except Empty:  # what kombu's transports raise for an empty queue
                pass
        return (time.perf_counter() - start) / polls * 1000


def keep_delivered(url: str, path: Path, kept: int) -> None:
    """A real message sent and taken through kombu (creating its tables), then ``kept`` delivered
    rows as the transport leaves them (a worker's message: ~600 bytes of payload)."""
    from kombu import Connection

    with Connection(url) as conn:
        queue = conn.SimpleQueue(QUEUE)
        queue.put({"task": "warm-up"})
        queue.get(timeout=5).ack()
        queue.close()
    db = sqlite3.connect(path)
    queue_id = db.execute("SELECT id FROM kombu_queue WHERE name = ?", (QUEUE,)).fetchone()[0]
    db.executemany("INSERT INTO kombu_message (visible, timestamp, payload, version, queue_id) "
                   "VALUES (0, datetime('now'), ?, 1, ?)", [("x" * 600, queue_id)] * kept)
    db.commit()
    db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kept", type=int, default=200_000, help="delivered rows kept before the tidy")
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args(argv)
    from tagger.jobs import broker_tidy

    path = Path(tempfile.mkdtemp(prefix="tagscope-broker-poll-")) / "broker.sqlite"
    url = f"sqla+sqlite:///{path}"
    keep_delivered(url, path, args.kept)
    before = empty_poll_ms(url, args.polls)
    start = time.perf_counter()
    deleted = 0
    while True:  # pass after pass, as the sweeper does (a bounded batch each)
        n = broker_tidy.delete_delivered(url)
        deleted += n
        if n == 0:
            break
    tidy_s = time.perf_counter() - start
    after = empty_poll_ms(url, args.polls)
    print(f"empty poll with {args.kept} delivered rows kept: {before:.2f} ms (under the broker's write lock)")
    print(f"tidy: {deleted} rows deleted in {tidy_s:.2f} s")
    print(f"empty poll after the tidy: {after:.2f} ms ({before / after:.0f}x faster)")
    print(json.dumps({"kept": args.kept, "poll_ms_kept": round(before, 3), "poll_ms_tidied": round(after, 3),
                      "ratio": round(before / after, 1), "deleted": deleted, "tidy_s": round(tidy_s, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
