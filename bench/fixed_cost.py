"""The fixed cost of a tagging run: ``tagscope tag PHOTOS --retag`` in a new process vs the model
alone (issue 23 point 5), in one run.

    python -m bench.fixed_cost [--n 96,256] [--repeats 3] [--runtime torch] [--model open_clip:ViT-B-32]
                               [--size 4032x3024] [--work DIR] [--runtime-cache DIR]
                               [--compare TREE --name after --compare-name before] [--no-trace]

1. photo-sized JPEGs (bench/photos.py), one collection (``TAGSCOPE_HOME``) per size and runtime,
   each tagged once untimed (labels encoded and stored, an exported tower cached for ``auto``);
2. ``--repeats`` rounds: model-only img/s (as :func:`bench.pipeline.model_only`: the pipeline's
   own runner on pixels decoded beforehand, in this process), then the wall time of ``python -m
   tagscope tag PHOTOS --retag`` in a new process for each size (imports, model load, vocabulary,
   scan, pipeline, index sync and interpreter exit all count), with the load average before
   each. With ``--compare TREE`` (another source tree: a copy before a change), each run is made
   from both trees, their order alternating round to round. Ratio = (n / wall) / model-only: of
   the medians, and the median of each round's (its own model-only figure);
3. where the seconds go: one more run per size and tree in a traced process (:func:`child`: the
   same command, with spans recorded by wrapping the functions that start each phase, and ``-X
   importtime`` summed per top-level package). Each span counts its own time (nested spans
   excluded), wall and CPU, so the lines add up to the run's wall time; CPU seconds hold up
   better when other work shares the machine.

Prints figures as they come; the last line is JSON.
"""

from __future__ import annotations

import argparse
import functools
import importlib.abc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TRACE_ENV = "TAGSCOPE_FIXED_COST_TRACE"

# (module, attribute, label): wrapped in the traced process when the module is imported; a
# "Class.method" attribute wraps a method. Main-thread calls only are recorded.
SPANS = [
    ("tagscope.common", "load_settings", "settings"),
    ("tagscope.collection", "check_offline_weights", "offline-weights check"),
    ("tagger.jobs.celery_app", "celery_app", "celery app (+ task module imports)"),
    ("mkt.factory", "get_model", "model load (get_model)"),
    ("core.db", "Database.ensure_schema", "db open: migrations check"),
    ("core.db", "get_database", "db open"),
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
    """``python -c 'from bench.fixed_cost import child; child()' ARGS``: ``tagscope ARGS`` with spans
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


def tag_command(photos: Path) -> list[str]:
    return ["-m", "tagscope", "tag", str(photos), "--retag"]


def timed_run(photos: Path, env: dict[str, str], tree: Path) -> float:
    """Wall seconds of ``python -m tagscope tag PHOTOS --retag`` run from the source tree ``tree``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *tag_command(photos)], env=env, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


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


def load() -> float:
    return os.getloadavg()[0]


ROOT = Path(__file__).resolve().parent.parent


def setup(args) -> tuple[Path, dict[int, Path], dict[int, dict[str, str]], list[Path]]:
    """Photos (rendered once per work folder), one folder (hard links) and environment per size."""
    from bench.photos import write_photos

    sizes = args.sizes
    work = Path(args.work or tempfile.mkdtemp(prefix="tagscope-fixed-cost-"))
    photos = work / f"photos-{max(sizes)}"
    if len(list(photos.glob("*.jpg"))) < max(sizes):
        write_photos(photos, max(sizes), args.size, distinct=32)
    paths = sorted(photos.glob("*.jpg"))[: max(sizes)]
    folders = {}
    for n in sizes:
        folders[n] = work / f"photos-{n}"
        folders[n].mkdir(exist_ok=True)
        for p in paths[:n]:
            if not (folders[n] / p.name).exists():
                os.link(p, folders[n] / p.name)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAGSCOPE_")}
    cache = args.runtime_cache or str(work / "runtimes")
    envs = {n: {**base, "TAGSCOPE_HOME": str(work / f"home-{args.runtime}-{n}"), "TAGSCOPE_MODEL": args.model,
                "TAGSCOPE_RUNTIME": args.runtime, "TAGSCOPE_DEVICE": "cpu", "TAGSCOPE_RUNTIME_CACHE": cache,
                "PYTHONWARNINGS": "ignore"} for n in sizes}
    for n in sizes:  # untimed first runs: labels encoded and stored, an exported tower cached
        subprocess.run([sys.executable, "-m", "tagscope", "tag", str(folders[n])], env=envs[n], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return work, folders, envs, paths


def rounds(args, trees: dict[str, Path], folders, envs, paths) -> tuple[list[dict], int]:
    """Model-only img/s, then each size's run from each tree (the trees' order alternating); and
    the batch size."""
    from bench.pipeline import model_only

    model, batch, settings = _model(envs[args.sizes[0]])
    out = []
    for r in range(args.repeats):
        row = {"load": round(load(), 2), "model_only": model_only(model, paths[: args.model_only_n], batch, settings)}
        names = list(trees) if r % 2 == 0 else list(reversed(trees))
        for n in args.sizes:
            for name in names:
                row[f"load_{name}_{n}"] = round(load(), 2)
                row[f"wall_{name}_{n}"] = timed_run(folders[n], envs[n], trees[name])
        out.append(row)
        print(f"round {r + 1}: model-only {row['model_only']:.2f} img/s (load {row['load']}); " + "; ".join(
            f"{name} {n}: {row[f'wall_{name}_{n}']:.1f} s (load {row[f'load_{name}_{n}']}, "
            f"ratio {n / row[f'wall_{name}_{n}'] / row['model_only']:.2f})" for n in args.sizes for name in trees),
            flush=True)
    return out, batch


def summarize(args, trees: dict[str, Path], rows: list[dict], batch: int) -> dict:
    mo = statistics.median(r["model_only"] for r in rows)
    result = {"model": args.model, "runtime": args.runtime, "batch": batch, "cpus": os.cpu_count(),
              "model_only_img_s": round(mo, 2), "rounds": [{k: round(v, 2) for k, v in r.items()} for r in rows]}
    for name in trees:
        for n in args.sizes:
            walls = [r[f"wall_{name}_{n}"] for r in rows]
            ratios = [n / r[f"wall_{name}_{n}"] / r["model_only"] for r in rows]
            wall = statistics.median(walls)
            result[f"{name}_{n}"] = {"wall_s": round(wall, 2), "wall_min_s": round(min(walls), 2),
                                     "ratio": round(n / wall / mo, 3),
                                     "ratio_median_per_round": round(statistics.median(ratios), 3),
                                     "ratio_per_round": [round(x, 3) for x in ratios],
                                     "outside_model_s": round(wall - n / mo, 2)}
            print(f"{name}, {n} photos: wall {wall:.1f} s median (min {min(walls):.1f}), model alone {n / mo:.1f} s; "
                  f"ratio {n / wall / mo:.2f} (per round {', '.join(f'{x:.2f}' for x in ratios)}; "
                  f"median {statistics.median(ratios):.2f})", flush=True)
    return result


def breakdown(args, trees: dict[str, Path], folders, envs, result: dict) -> None:
    for name, tree in trees.items():
        for n in args.sizes:
            traced = traced_run(folders[n], envs[n], tree)
            print(f"\nwhere the seconds go: {name}, {n} photos (traced run, -X importtime on: {traced['wall']:.1f} s, "
                  f"load {load():.2f}):")
            print("     wall    CPU (this process, all threads)")
            for label, s in traced["own"].items():
                times = traced["count"].get(label, 1)
                cpu = f"{traced['cpu'][label]:7.2f}" if label in traced["cpu"] else "      -"
                print(f"  {s:7.2f} {cpu}  {label}" + (f" (x{times})" if times > 1 else ""))
            print("  imports per package (-X importtime, own times): " + ", ".join(
                f"{k} {v:.2f}" for k, v in traced["imports"].items()), flush=True)
            result[f"{name}_{n}"]["traced"] = {"wall_s": round(traced["wall"], 2),
                                              "own_s": {k: round(v, 3) for k, v in traced["own"].items()},
                                              "cpu_s": {k: round(v, 3) for k, v in traced["cpu"].items()},
                                              "imports_s": {k: round(v, 3) for k, v in traced["imports"].items()}}


def main(argv: list[str] | None = None) -> int:
    from bench.photos import PHONE, parse_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="96,256", help="collection sizes, comma separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="open_clip:ViT-B-32")
    parser.add_argument("--runtime", default="torch", choices=["auto", "torch", "onnx", "openvino"])
    parser.add_argument("--size", type=parse_size, default=PHONE)
    parser.add_argument("--model-only-n", type=int, default=128, help="images per model-only measurement")
    parser.add_argument("--work", help="scratch folder (default: a new temporary one); photos and homes are reused")
    parser.add_argument("--runtime-cache", help="TAGSCOPE_RUNTIME_CACHE (default: WORK/runtimes)")
    parser.add_argument("--compare", metavar="TREE",
                        help="another source tree (e.g. a copy before a change): its runs interleaved with this one's")
    parser.add_argument("--name", default="this", help="this tree's name in the output")
    parser.add_argument("--compare-name", default="compare", help="the other tree's name in the output")
    parser.add_argument("--no-trace", action="store_true", help="skip the traced runs (the breakdown)")
    args = parser.parse_args(argv)
    args.sizes = [int(v) for v in args.n.split(",")]
    trees = {args.name: ROOT, **({args.compare_name: Path(args.compare).resolve()} if args.compare else {})}
    work, folders, envs, paths = setup(args)
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"JPEGs {args.size[0]}x{args.size[1]}, {mb:.2f} MB each; model {args.model}, runtime {args.runtime}; "
          f"{os.cpu_count()} CPUs; trees {', '.join(f'{k}={v}' for k, v in trees.items())}; work {work}", flush=True)
    result = summarize(args, trees, *rounds(args, trees, folders, envs, paths))
    if not args.no_trace:
        breakdown(args, trees, folders, envs, result)
    print(json.dumps(result))
    return 0


def _model(env: dict[str, str]):
    """The model as the runs load it (the runtime a job resolves), its CPU batch, and settings."""
    from core.settings import load_settings
    from mkt.factory import get_model

    settings = load_settings(environ=env)
    model = get_model(settings.tagging_model, "cpu", runtime=settings.runtime)
    return model, settings.batch_for("cpu"), settings


if __name__ == "__main__":
    raise SystemExit(main())
