"""Running a function as a user that file permissions apply to (the suite may run as root)."""

from __future__ import annotations

import os


def as_unprivileged(fn, *args):
    """Run ``fn(*args)`` in a child that cannot bypass file permissions (root drops to nobody)."""

    def child(conn, *a):
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        try:
            conn.send(("ok", fn(*a)))
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            conn.send(("error", repr(exc)))

    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, sub = ctx.Pipe()
    proc = ctx.Process(target=child, args=(sub, *args))
    proc.start()
    status, value = parent.recv()
    proc.join()
    assert status == "ok", value
    return value
