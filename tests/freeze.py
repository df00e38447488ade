"""Freezing a real worker at a safe moment: the fault tests' SIGSTOP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def freeze_worker(proc: subprocess.Popen, sqlite_path: Path, tries: int = 100) -> None:
    """SIGSTOP the worker's process group at a moment it holds no write lock on the SQLite
    database ``sqlite_path`` (frozen inside a write, it would block every other writer until
    thawed): freeze, check that a write can start, else thaw and try again a moment later."""
    import sqlite3

    for _ in range(tries):
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            conn = sqlite3.connect(str(sqlite_path), timeout=0.2)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.rollback()
                return
            finally:
                conn.close()
        except sqlite3.OperationalError:  # locked by the frozen worker
            os.killpg(proc.pid, signal.SIGCONT)
            time.sleep(0.05)
    raise AssertionError(f"the worker held {sqlite_path} locked at every one of {tries} tries")
