"""Tagging pipeline vs the model's own forward pass, on the same photo-sized JPEGs, in one run.

    python -m bench.pipeline [--n 96] [--model open_clip:ViT-B-32] [--size 4032x3024] [--device cpu]
                             [--runtime torch]

1. model-only: the image tower (the pipeline's own :class:`mkt.runner.ImageRunner`, batch as the
   pipeline's) on the photos already decoded and preprocessed, nothing else timed;
2. first run: ``run_job`` on a new collection with the default vocabulary (2,245 labels for
   open_clip models) not yet stored: scan, label encoding, decode, model, writes, index;
3. second run: ``--retag`` of the same collection, label embeddings stored;
4. ratios end-to-end / model-only (issue 10's targets: >= 0.9 second run, >= 0.5 first run).

Prints figures as they come and one JSON line at the end; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch


def model_only(model, paths: list[Path], batch: int, settings) -> float:
    """img/s of the image tower alone over len(paths) images (pixels prepared beforehand)."""
    from core.media.stills import read_image
    from tagger.tagging import runner_for

    runner = runner_for(model, settings)
    prepared = [runner.geometry.to_uint8(read_image(p)[0]) if runner.geometry is not None
                else model.preprocess(read_image(p)[0]) for p in paths[:batch]]
    pixels = torch.stack(prepared).to(model.device)
    runner.embed(pixels[: min(8, len(pixels))])  # warm-up
    n = len(paths)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        runner.embed(pixels[: min(batch, n - start)])
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    from bench.photos import PHONE, parse_size, write_photos

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--model", default="open_clip:ViT-B-32")
    parser.add_argument("--size", type=parse_size, default=PHONE)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--distinct", type=int, default=32, help="photos rendered; the rest are distinct copies")
    parser.add_argument("--runtime", default="torch",
                        help="the image tower's runtime, the same for model-only and both runs (torch, onnx, "
                             "openvino, auto): a ratio compares the pipeline with its own model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tagger.tagging").setLevel(logging.INFO)

    from core.settings import load_settings
    from mkt.runtime.factory import model_on
    from tagger import vocabulary
    from tagger.jobs.run import run_job

    work = Path(tempfile.mkdtemp(prefix="tagscope-pipeline-"))
    paths = write_photos(work / "photos", args.n, args.size, distinct=args.distinct)
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"{args.n} JPEGs {args.size[0]}x{args.size[1]}, {mb:.2f} MB each; model {args.model} on {args.device}, "
          f"runtime {args.runtime}")
    settings = load_settings(environ={}, home=str(work / "home"), model=args.model, device=args.device,
                             runtime=args.runtime)
    model = model_on(settings.tagging_model, args.device, runtime=settings.runtime)
    batch = settings.batch_for(model.device.type)
    rates = {"model_only": model_only(model, paths, batch, settings)}
    print(f"model-only (batch {batch}):       {rates['model_only']:8.2f} img/s")
    vocabulary._label_cache.clear()
    for run, retag in (("first_run", False), ("second_run", True)):
        t0 = time.perf_counter()
        run_job(settings, [str(work / "photos")], retag=retag)
        rates[run] = args.n / (time.perf_counter() - t0)
        print(f"end to end, {run.replace('_', ' '):11s}:     {rates[run]:8.2f} img/s "
              f"(ratio {rates[run] / rates['model_only']:.2f})")
    print(json.dumps({"n": args.n, "size": list(args.size), "mb_each": round(mb, 2), "model": args.model,
                      "device": args.device, "runtime": args.runtime, "batch": batch,
                      "workers": settings.workers_for(model.device.type),
                      "img_s": {k: round(v, 2) for k, v in rates.items()},
                      "ratio_first": round(rates["first_run"] / rates["model_only"], 3),
                      "ratio_second": round(rates["second_run"] / rates["model_only"], 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
