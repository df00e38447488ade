"""Freezing a real worker at a safe moment: the fault tests' SIGSTOP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def group_members(pgid: int) -> list[int]:
    """The pids of the live processes in process group ``pgid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[2]) == pgid:
                out.append(int(entry))
    return out


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: [state, ppid, pgrp, ...]; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def wait_stopped(pgid: int, timeout: float = 5.0) -> None:
    """Return once every process of the group is stopped (state T): a signal is delivered
    asynchronously, and a process still running may take a lock after ``killpg`` returned."""
    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in group_members(pgid) if (_stat_fields(pid) or ["T"])[0] not in ("T", "t", "Z", "X")]
        if not running:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {running} of group {pgid} did not stop within {timeout}s of SIGSTOP")
        time.sleep(0.005)


def freeze_worker(proc: subprocess.Popen, sqlite_path: Path, tries: int = 100) -> None:
    """SIGSTOP the worker's process group at a moment it holds no write lock on the SQLite
    database ``sqlite_path`` (frozen inside a write, it would block every other writer until
    thawed): freeze, wait until every process of the group has stopped, check that a write can
    start, else thaw and try again a moment later."""
    import sqlite3

    for _ in range(tries):
        os.killpg(proc.pid, signal.SIGSTOP)
        wait_stopped(proc.pid)
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
