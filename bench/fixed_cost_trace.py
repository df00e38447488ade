"""The traced run of bench.fixed_cost: ``tagscope tag PHOTOS --retag`` with spans recorded where
each phase starts (each span's own time, nested spans excluded, wall and CPU) and ``-X
importtime`` summed per top-level package. Loaded by path in the child process (:data:`CHILD`),
so it imports nothing of the tree it measures before the command does."""

from __future__ import annotations

import functools
import importlib.abc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def tag_command(photos: Path) -> list[str]:
    return ["-m", "tagscope", "tag", str(photos), "--retag"]


TRACE_ENV = "TAGSCOPE_FIXED_COST_TRACE"

# (module, attribute, label): wrapped in the traced process when the module is imported; a
# "Class.method" attribute wraps a method. Main-thread calls only are recorded.
SPANS = [
    ("tagscope.common", "load_settings", "settings"),
    ("tagscope.collection", "check_offline_weights", "offline-weights check"),
    ("tagger.jobs.celery_app", "celery_app", "celery app (+ task module imports)"),
    ("mkt.factory", "get_model", "model load (get_model)"),
    ("migrations", "ensure_schema", "db open: migrations check"),
    ("migrations", "get_database", "db open"),
    ("tagger.jobs.control", "interrupt_dead_in_process_jobs", "interrupt dead jobs"),
    ("tagger.jobs.start", "seed_vocabulary", "vocabulary seed check"),
    ("tagger.jobs.rows", "ensure_model_version", "model version row"),
    ("tagger.scan", "scan", "scan / registration"),
    ("tagger.media_backfill", "catch_up", "media facts catch-up"),
    ("tagger.scan", "images_to_tag", "images to tag"),
    ("tagger.jobs.rows", "create_job", "job creation"),
    ("tagger.jobs.run", "_progress_bar", "progress bar"),
    ("tagger.jobs.leases", "claim", "task claim"),
    ("tagger.jobs.rows", "unprocessed", "task: unprocessed images"),
    ("tagger.jobs.tasks", "load_work", "task: load work (job row, model)"),
    ("tagger.tagging", "runner_for", "runner"),
    ("tagger.vocabulary", "vocabulary", "label vocabulary read"),
    ("tagger.vocabulary", "label_embeddings", "label embeddings load"),
    ("tagger.tagging", "_decoded", "decode processes (first task: start)"),
    ("tagger.tagging", "tag_images", "pipeline: decode waits, writes, other"),
    ("mkt.runner", "ImageRunner.embed", "pipeline: model (image tower)"),
    ("tagger.jobs.leases", "finish", "task finish"),
    ("tagger.jobs.close", "close_job_if_complete", "job close"),
    ("tagger.jobs.run", "sync_index", "index sync (end of job)"),
    ("tagger.jobs.run", "_summary", "summary"),
]
IMPORTS = ("tagscope.cli", "tagger.jobs.run", "tagger.tagging", "mkt.runner")
FIRST_BATCH = ("tagger.decode", "rebatch")


class _Recorder:
    """Spans on the main thread: each one's own time (its nested spans' excluded), by label, in
    wall seconds and in this process's CPU seconds (all its threads: the model's run on two)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.main = threading.main_thread()
        self.stack: list[list] = []  # [label, start, start CPU, nested seconds, nested CPU seconds]
        self.own: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.marks: dict[str, float] = {"start": time.time(), "start_cpu": time.process_time()}

    def enter(self, label: str) -> bool:
        if threading.current_thread() is not self.main or os.getpid() != self.pid:
            return False
        self.stack.append([label, time.perf_counter(), time.process_time(), 0.0, 0.0])
        return True

    def leave(self) -> None:
        label, t0, c0, nested, nested_cpu = self.stack.pop()
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.own[label] = self.own.get(label, 0.0) + took - nested
        self.cpu[label] = self.cpu.get(label, 0.0) + cpu - nested_cpu
        self.count[label] = self.count.get(label, 0) + 1
        if self.stack:
            self.stack[-1][3] += took
            self.stack[-1][4] += cpu

    def span(self, fn, label: str):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not self.enter(label):
                return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()

        return wrapper

    def first_batch(self, fn):
        """Wrap a generator function: the wait for its first item is a span of its own."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            it = fn(*args, **kwargs)
            entered = self.enter("pipeline: first batch (decode workers start, first decodes)")
            try:
                first = next(it)
            except StopIteration:
                return
            finally:
                if entered:
                    self.leave()
            yield first
            yield from it

        return wrapper


class _Hook(importlib.abc.MetaPathFinder):
    """Times the imports in IMPORTS and wraps SPANS' functions as their modules are executed."""

    def __init__(self, rec: _Recorder) -> None:
        self.rec = rec
        self.targets: dict[str, list[tuple[str, str]]] = {}
        for module, attr, label in SPANS:
            self.targets.setdefault(module, []).append((attr, label))

    def find_spec(self, name, path, target=None):
        if name not in self.targets and name not in IMPORTS and name != FIRST_BATCH[0]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module
        entered = name in IMPORTS and self.rec.enter(f"import {name} (own modules and libraries)")

        def exec_module(module):
            try:
                run(module)
            finally:
                if entered:
                    self.rec.leave()
            self._patch(module)

        spec.loader.exec_module = exec_module
        return spec

    def _patch(self, module) -> None:
        for attr, label in self.targets.get(module.__name__, []):
            owner_name, _, method = attr.rpartition(".")
            owner = getattr(module, owner_name, None) if owner_name else module
            if not hasattr(owner, method):  # another source tree (--compare) may lack it
                continue
            setattr(owner, method, self.rec.span(getattr(owner, method), label))
        if module.__name__ == FIRST_BATCH[0]:
            setattr(module, FIRST_BATCH[1], self.rec.first_batch(getattr(module, FIRST_BATCH[1])))


def child() -> None:
    """``python -c 'from bench.fixed_cost_trace import child; child()' ARGS``: ``tagscope ARGS`` with spans
    recorded; written as JSON to $TAGSCOPE_FIXED_COST_TRACE at exit."""
    import atexit

    rec = _Recorder()
    sys.meta_path.insert(0, _Hook(rec))

    def dump() -> None:
        if os.getpid() == rec.pid:
            rec.marks["exit"] = time.time()
            rec.marks["exit_cpu"] = time.process_time()
            Path(os.environ[TRACE_ENV]).write_text(json.dumps({"own": rec.own, "cpu": rec.cpu, "count": rec.count,
                                                               "marks": rec.marks}))

    atexit.register(dump)
    from tagscope.cli import main

    sys.argv[0] = "tagscope"
    main()


def import_totals(stderr: str, top: int = 10) -> dict[str, float]:
    """``-X importtime`` lines summed per top-level package (own times, seconds), largest first."""
    per: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        root = name.split(".")[0]
        per[root] = per.get(root, 0.0) + int(own) / 1e6
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    out = dict(ranked[:top])
    out["(all others)"] = sum(v for _, v in ranked[top:])
    out["total"] = sum(per.values())
    return out


CHILD = ("import importlib.util as u; s = u.spec_from_file_location('fixed_cost_child', {path!r}); "
         "m = u.module_from_spec(s); s.loader.exec_module(m); m.child()")


def traced_run(photos: Path, env: dict[str, str], tree: Path) -> dict:
    """One run in a traced process: its spans, the time before the CLI's main and after its last
    span (interpreter start and exit), and -X importtime per package."""
    trace = Path(tempfile.mkstemp(suffix=".json")[1])
    t0 = time.time()
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD.format(path=str(Path(__file__).resolve())),
                          *tag_command(photos)[2:]], env={**env, TRACE_ENV: str(trace)}, cwd=tree,
                         check=True, capture_output=True, text=True)
    wall = time.time() - t0
    data = json.loads(trace.read_text())
    trace.unlink()
    marks = data["marks"]
    own = {"python start (interpreter, site)": marks["start"] - t0, **data["own"]}
    own["exit (decode processes, interpreter)"] = t0 + wall - marks["exit"]
    own["other (between spans)"] = wall - sum(own.values())
    cpu = {"python start (interpreter, site)": marks["start_cpu"], **data["cpu"]}
    cpu["other (between spans)"] = marks["exit_cpu"] - sum(cpu.values())
    return {"wall": wall, "own": own, "cpu": cpu, "count": data["count"], "imports": import_totals(out.stderr)}


