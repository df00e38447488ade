"""Decode processes that live as long as the tagging process (tagger.decode_pool): the same
batches as decoding here, in order; the same processes task after task; a stream left early
leaves nothing behind for the next; a decode process killed mid-task fails the task in one line
and the next task gets new processes; orphaned processes leave by themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mkt.pixels import InputGeometry
from tagger import decode_pool
from tagger.decode import PhotoFiles, collate
from tests import ROOT
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> PhotoFiles:
    from bench.photos import make_photo
    from mkt.factory import get_model

    model = get_model("synthetic", "cpu")
    folder = tmp_path_factory.mktemp("pool-photos")
    items = []
    for i in range(40):
        path = folder / f"photo_{i:02d}.jpg"
        if i == 7:
            path.write_bytes(b"not a photo")
        else:
            make_photo(300 + i, (800, 600)).save(path, quality=85)
        items.append((1000 + i, os.fsencode(path)))
    return PhotoFiles(items, model.preprocess, 10**9, InputGeometry.of(model.preprocess))


@pytest.fixture(autouse=True)
def fresh_pools():
    decode_pool.shutdown()
    yield
    decode_pool.shutdown()


def _here(files: PhotoFiles, chunk: int) -> list[dict]:
    return [collate([files[i] for i in range(s, min(s + chunk, len(files)))]) for s in range(0, len(files), chunk)]


def _same(a: list[dict], b: list[dict]) -> None:
    assert [[it["id"] for it in x["ok"]] for x in a] == [[it["id"] for it in x["ok"]] for x in b]
    assert [[it["id"] for it in x["failed"]] for x in a] == [[it["id"] for it in x["failed"]] for x in b]
    assert [it["hash"] for x in a for it in x["ok"]] == [it["hash"] for x in b for it in x["ok"]]
    for x, y in zip(a, b):
        assert torch.equal(x["pixels"], y["pixels"])


@pytest.mark.parametrize("context", [None, "forkserver"])  # forkserver: after LibRaw ran in this process
def test_batches_equal_decoding_here_and_the_processes_serve_task_after_task(files, context):
    expected = _here(files, 6)
    with decode_pool.lease(2, context) as pool:
        pids = [p.pid for p in pool.procs]
        _same(list(pool.batches(files, 6)), expected)
    assert [it["id"] for it in expected[1]["failed"]] == [1007]  # the broken file: a reason, not an exception
    time.sleep(decode_pool.POLL_SECONDS * 1.5)  # idle between tasks: the processes wait, they do not leave
    with decode_pool.lease(2, context) as pool:  # the next task: the same processes
        assert [p.pid for p in pool.procs] == pids and all(p.is_alive() for p in pool.procs)
        _same(list(pool.batches(files.part(10, 40), 6)), _here(files.part(10, 40), 6))


def test_a_stream_left_early_leaves_nothing_for_the_next(files):
    with decode_pool.lease(2) as pool:
        stream = pool.batches(files, 4)
        first = next(stream)
        stream.close()  # a cancelled job: 9 chunks never asked for
        assert [it["id"] for it in first["ok"]] == [1000, 1001, 1002, 1003]
        _same(list(pool.batches(files.part(20, 40), 4)), _here(files.part(20, 40), 4))


def test_a_killed_decode_process_fails_the_task_in_one_line_and_the_next_gets_new_ones(files):
    with decode_pool.lease(2) as pool:
        old = {p.pid for p in pool.procs}
        stream = pool.batches(files, 2)
        next(stream)
        # Every decode process killed: with one left alive, a killed one that held no chunk at that
        # moment would leave the rest of the task to the other (which is fine, and not this test).
        for proc in pool.procs:
            os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(decode_pool.DecodeWorkerDied, match=r"^decode process \d+ died \(exit code -9\)"):
            list(stream)
        assert pool.broken and not any(p.is_alive() for p in pool.procs)
    with decode_pool.lease(2) as pool:
        assert not {p.pid for p in pool.procs} & old
        _same(list(pool.batches(files.part(0, 12), 4)), _here(files.part(0, 12), 4))


@pytest.mark.worker
@pytest.mark.parametrize("context", ["fork", "forkserver"])
def test_decode_processes_leave_when_their_parent_is_killed(tmp_path, context):
    script = ("import sys; from tagger import decode_pool\n"
              f"pool = decode_pool.DecodePool(2, {context!r})\n"
              "print(' '.join(str(p.pid) for p in pool.procs), flush=True)\n"
              "import time; time.sleep(600)\n")
    with subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True) as parent:
        try:
            pids = [int(p) for p in parent.stdout.readline().split()]
            assert len(pids) == 2
        finally:
            parent.kill()
            parent.wait(timeout=30)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it has left too
            return f.read().split(") ")[-1].startswith("Z")

    # They check for their parent every POLL_SECONDS; the timeout only bounds a wait for them to go.
    wait_until(lambda: all(gone(p) for p in pids), timeout=120, what="orphaned decode processes to leave")


def test_jobs_in_one_process_share_the_decode_processes(tmp_path, synthetic_photos):
    from core.settings import load_settings
    from tagger.jobs.run import run_job
    from tests.photos import photos_subset

    photos = photos_subset(synthetic_photos, tmp_path / "photos", 24)
    settings = load_settings(environ={}, home=str(tmp_path / "home"), model="synthetic", device="cpu",
                             loader_workers=2, batch_size=8)
    assert "24 processed" in run_job(settings, [str(photos)])
    assert len(decode_pool._free) == 1
    pids = [p.pid for p in decode_pool._free[0].procs]
    assert "24 processed" in run_job(settings, [str(photos)], retag=True)
    assert [[p.pid for p in pool.procs] for pool in decode_pool._free] == [pids]


def test_a_pool_of_another_size_replaces_the_idle_one(files):
    with decode_pool.lease(2) as pool:
        two = pool.procs
    with decode_pool.lease(1) as pool:
        assert len(pool.procs) == 1
        _same(list(pool.batches(files.part(0, 8), 4)), _here(files.part(0, 8), 4))
    assert not any(p.is_alive() for p in two) and len(decode_pool._free) == 1


def test_batches_prepared_ahead_on_a_thread_come_in_order_and_stop_when_closed(files):
    """decode_pool.ahead: what pins pixels for the GPU (CUDA only, so here a marker stands in for
    pin_memory); errors reach the consumer; closing it stops the thread, then the pool's stream closes."""
    import threading

    def mark(batch):
        batch["prepared_on"] = threading.current_thread().name
        return batch

    with decode_pool.lease(2) as pool:
        got = list(decode_pool.ahead(pool.batches(files, 4), mark))
        _same(got, _here(files, 4))
        assert {b["prepared_on"] for b in got} == {"tagscope-prepare"}
        stream = pool.batches(files, 4)
        early = decode_pool.ahead(stream, mark)
        next(early)
        early.close()
        assert not [t for t in threading.enumerate() if t.name == "tagscope-prepare"]
        stream.close()  # no longer running on the thread: closes cleanly
        _same(list(pool.batches(files.part(0, 8), 4)), _here(files.part(0, 8), 4))

    def fail(batch):
        raise ValueError("cannot pin")

    with pytest.raises(ValueError, match="cannot pin"):
        list(decode_pool.ahead(iter([{"pixels": None}]), fail))
