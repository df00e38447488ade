"""The image tower on PyTorch, ONNX Runtime and OpenVINO, side by side in one run (issue 23).

    python -m bench.runtime [--n 128] [--model open_clip:ViT-B-32] [--size 4032x3024] [--threads 2]

On the same photo-sized JPEGs (bench/photos.py), for PyTorch fp32 and each installed runtime at
the precision :mod:`mkt.runtime` chose for the model (the reduced one only when it agrees), and
ONNX Runtime int8 as such for the record:

1. agreement with PyTorch fp32 on ``--agreement`` photo-like images (other scenes, 640x480): mean
   cosine of the global embeddings, the share of photos with the same best tag and the mean
   overlap of the five best, default vocabulary;
2. model-only img/s: the pipeline's own ImageRunner on pixels decoded beforehand;
3. end to end img/s: ``run_job(..., retag=True)`` of the collection (label embeddings already
   stored by a first, untimed run): scan, decode, model, writes, index;
4. cold starts, each in a new process: a worker's (imports, model load, the exported tower
   opened, first batch) and ``tagscope search`` without a server.

The last line is JSON with ``torch_img_s``, ``onnx_img_s``, ``openvino_img_s`` (end to end) and
``best_ratio`` (the best CPU runtime's end-to-end rate over PyTorch fp32's).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

COLD_WORKER = """
import sys, time
t0 = time.perf_counter()
import torch
from mkt.runtime.factory import model_on
from tagger.tagging import runner_for
from core.settings import load_settings
model = model_on(sys.argv[1], "cpu", sys.argv[2])
runner = runner_for(model, load_settings(environ={{}}))
runner.embed(torch.zeros(8, 3, {size}, {size}, dtype=torch.uint8))
print(time.perf_counter() - t0)
"""


def agreement(model, variant, pixels: torch.Tensor, labels: list[str]) -> dict:
    from mkt.runtime.agreement import measure

    with torch.inference_mode():
        a = model.encode_images(pixels, with_patches=model.local_top_k > 0)
        b = variant.encode_images(pixels, with_patches=model.local_top_k > 0)
    return measure(model, a, b, labels).as_dict()


def cold_worker(spec: str, runtime: str, size: int) -> float:
    out = subprocess.run([sys.executable, "-c", COLD_WORKER.format(size=size), spec, runtime],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return float(out.stdout.strip().splitlines()[-1])


def cold_search(home: Path, runtime: str) -> float:
    env = {**os.environ, "TAGSCOPE_HOME": str(home), "TAGSCOPE_RUNTIME": runtime, "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tagscope", "search", "a dog on a beach", "-k", "5"], env=env,
                   capture_output=True, check=True)
    return time.perf_counter() - t0


def measure_variant(args, work: Path, model, name: str, variant, pixels: torch.Tensor, labels: list[str],
                    paths: list[Path], timed: bool) -> dict:
    """One runtime's row: agreement, model-only, and (``timed``: what the setting runs) end to end
    and cold starts."""
    from bench.pipeline import model_only
    from core.settings import load_settings
    from mkt.runtime.factory import runtime_of
    from tagger import vocabulary
    from tagger.jobs.run import run_job

    settings = load_settings(environ={}, home=str(work / f"home-{name}"), model=args.model, device="cpu",
                             runtime=name.partition("-")[0])
    row = {"version": variant.version,
           "agreement": agreement(model, variant, pixels, labels) if variant is not model else None,
           "model_only_img_s": model_only(variant, paths, settings.batch_for("cpu"), settings)}
    if timed:
        vocabulary._label_cache.clear()
        run_job(settings, [str(work / "photos")])  # label embeddings stored, towers warm
        t0 = time.perf_counter()
        run_job(settings, [str(work / "photos")], retag=True)
        row["end_to_end_img_s"] = args.n / (time.perf_counter() - t0)
        row["cold_worker_s"] = cold_worker(args.model, runtime_of(variant.version), pixels.shape[-1])
        row["cold_search_s"] = cold_search(work / f"home-{name}", name)
    return row


def main(argv: list[str] | None = None) -> int:
    from bench.photos import PHONE, make_photo, parse_size, write_photos

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--model", default="open_clip:ViT-B-32")
    parser.add_argument("--size", type=parse_size, default=PHONE)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--distinct", type=int, default=32, help="photos rendered; the rest are distinct copies")
    parser.add_argument("--agreement", type=int, default=256,
                        help="photo-like images (640x480, other scenes) the agreement is measured on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    from mkt.runtime import PRECISIONS, available
    from mkt.runtime.factory import model_on
    from tagger import vocabulary

    work = Path(tempfile.mkdtemp(prefix="tagscope-runtime-"))
    os.environ.setdefault("TAGSCOPE_RUNTIME_CACHE", str(work / "runtimes"))
    paths = write_photos(work / "photos", args.n, args.size, distinct=args.distinct)
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"{args.n} JPEGs {args.size[0]}x{args.size[1]}, {mb:.2f} MB each; {args.model}, {args.threads} threads")
    model = model_on(args.model, "cpu")
    labels = vocabulary.default_label_names()
    pixels = torch.stack([model.preprocess(make_photo(50_000 + i, (640, 480))) for i in range(args.agreement)])
    runtimes = ["torch"] + [r for r in PRECISIONS if available(r)]
    t0 = time.perf_counter()
    variants = {r: model_on(args.model, "cpu", r) for r in runtimes}  # exports and chooses (once)
    export_s = time.perf_counter() - t0
    if available("onnx") and not variants["onnx"].version.endswith("-int8"):  # for the record: not chosen
        variants["onnx-int8"] = model_on(args.model, "cpu", "onnx-int8")
    out: dict = {"n": args.n, "size": list(args.size), "mb_each": round(mb, 2), "model": args.model,
                 "threads": args.threads, "export_and_choose_s": round(export_s, 1), "runtimes": {}}
    for name, variant in variants.items():
        out["runtimes"][name] = row = measure_variant(args, work, model, name, variant, pixels, labels, paths,
                                                      timed=name in runtimes)
        print(name, json.dumps(row), flush=True)
    e2e = {name: row["end_to_end_img_s"] for name, row in out["runtimes"].items() if "end_to_end_img_s" in row}
    best = max((r for r in e2e if r != "torch"), key=e2e.get, default="torch")
    out.update({f"{r}_img_s": round(e2e[r], 2) for r in ("torch", "onnx", "openvino") if r in e2e})
    out["best"] = best
    out["best_ratio"] = round(e2e[best] / e2e["torch"], 3)
    out["model_only_ratio"] = round(out["runtimes"][best]["model_only_img_s"] /
                                    out["runtimes"]["torch"]["model_only_img_s"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
