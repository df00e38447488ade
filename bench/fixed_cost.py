"""The fixed cost of a tagging run: ``tagscope tag PHOTOS --retag`` in a new process vs the model
alone (issue 23 point 5), in one run.

    python -m bench.fixed_cost [--n 96,256] [--repeats 3] [--runtime torch] [--model open_clip:ViT-B-32]
                               [--size 4032x3024] [--work DIR] [--runtime-cache DIR]
                               [--compare TREE --name after --compare-name before] [--no-trace]
                               [--weights-file] [--threads N] [--loader-workers N]

1. photo-sized JPEGs (bench/photos.py), one collection (``TAGSCOPE_HOME``) per size and runtime,
   each tagged once untimed (labels encoded and stored, an exported tower cached for ``auto``);
2. ``--repeats`` rounds: model-only img/s (as :func:`bench.pipeline.model_only`: the pipeline's
   own runner on pixels decoded beforehand, in this process), then the wall time of ``python -m
   tagscope tag PHOTOS --retag`` in a new process for each size (imports, model load, vocabulary,
   scan, pipeline, index sync and interpreter exit all count), with the load average before
   each. With ``--compare TREE`` (another source tree: a copy before a change), each run is made
   from both trees, their order alternating round to round. Ratio = (n / wall) / model-only: of
   the medians, and the median of each round's (its own model-only figure);
3. where the seconds go: one more run per size and tree in a traced process (:mod:`bench.fixed_cost_trace`: the
   same command, with spans recorded by wrapping the functions that start each phase, and ``-X
   importtime`` summed per top-level package). Each span counts its own time (nested spans
   excluded), wall and CPU, so the lines add up to the run's wall time; CPU seconds hold up
   better when other work shares the machine.

Prints figures as they come; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fixed_cost_trace import tag_command, traced_run


def timed_run(photos: Path, env: dict[str, str], tree: Path) -> float:
    """Wall seconds of ``python -m tagscope tag PHOTOS --retag`` run from the source tree ``tree``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *tag_command(photos)], env=env, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


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
    if args.weights_file:  # as users of pretrained weights load them: a local file (open_clip:ARCH:FILE)
        args.model = f"{args.model}:{weights_file(args.model, work)}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAGSCOPE_")}
    cache = args.runtime_cache or str(work / "runtimes")
    envs = {n: {**base, "TAGSCOPE_HOME": str(work / f"home-{args.runtime}-{n}"), "TAGSCOPE_MODEL": args.model,
                "TAGSCOPE_RUNTIME": args.runtime, "TAGSCOPE_DEVICE": "cpu", "TAGSCOPE_RUNTIME_CACHE": cache,
                "PYTHONWARNINGS": "ignore",
                **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}),
                **({"TAGSCOPE_LOADER_WORKERS": str(args.loader_workers)} if args.loader_workers is not None else {})}
            for n in sizes}
    for n in sizes:  # untimed first runs: labels encoded and stored, an exported tower cached
        subprocess.run([sys.executable, "-m", "tagscope", "tag", str(folders[n])], env=envs[n], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return work, folders, envs, paths


def weights_file(spec: str, work: Path) -> Path:
    """The deterministic random weights of ``open_clip:ARCH`` saved once in ``work``."""
    import torch

    from mkt.factory import create_tag_model

    path = work / f"weights-{spec.split(':')[1]}.pt"
    if not path.exists():
        torch.save(create_tag_model(spec).clip.state_dict(), path)
    return path


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
    parser.add_argument("--weights-file", action="store_true",
                        help="load --model's weights from a file, as pretrained weights load (its random ones, saved)")
    parser.add_argument("--threads", type=int, help="the model's threads (OMP_NUM_THREADS; model-only too)")
    parser.add_argument("--loader-workers", type=int, help="decode processes (TAGSCOPE_LOADER_WORKERS)")
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
    from mkt.runtime.factory import model_on

    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    settings = load_settings(environ=env)
    model = model_on(settings.tagging_model, "cpu", runtime=settings.runtime)
    return model, settings.batch_for("cpu"), settings


if __name__ == "__main__":
    raise SystemExit(main())
