"""GPU figures in one short run: model-only vs end-to-end tagging on photo-sized JPEGs.

    sh bench/gpu.sh                   # or: python -m bench.gpu --n 4096 --json gpu.json

Measured side by side on one CUDA device, with ``open_clip:ViT-B-32`` (random weights: speed
does not depend on them) and the default vocabulary (2,245 labels):

1. model-only: the image tower on ready normalised batches already on the GPU (fp32, bf16
   autocast; batch 256 and 1024; optionally torch.compile), the same :class:`ImageRunner` the
   pipeline uses;
2. decoders alone: nvJPEG on batches of the photos vs libjpeg draft mode on one CPU core;
3. agreement: embeddings from the GPU path (nvJPEG + torch resize, bf16) vs the CPU reference
   (full PIL decode + the model's own transform, fp32): mean / min cosine;
4. end to end: ``run_job`` on a new collection (labels encoded on the way), then again with
   ``--retag`` (labels already stored), with GPU decode and with CPU decode;
5. a one-process NCCL DDP step (the backend multi-GPU training and workers would use).

Every figure is printed as soon as it exists and collected into ``--json``; a failing stage is
reported and the rest go on. Stays under ~5 minutes on an H100 with the defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ARCH_SPEC = "open_clip:ViT-B-32"
RESULTS: dict[str, Any] = {}


def record(key: str, value: Any) -> None:
    RESULTS[key] = value
    print(f"{key}: {value}", flush=True)


def stage(name: str, fn: Callable[[], None]) -> None:
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - one failing stage must not cost the others' figures
        record(f"{name}.error", f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    print(f"-- {name} took {time.perf_counter() - t0:.1f} s", flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def model_only(runner: Any, batch: int, iters: int = 20) -> float:
    """img/s of ``runner.embed`` on a uint8 batch already on the device."""
    size = runner.geometry.size
    pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=runner.device)
    for _ in range(3):
        runner.embed(pixels)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        runner.embed(pixels)
    sync()
    return batch * iters / (time.perf_counter() - t0)


def stage_model_only(model: Any, compile_too: bool) -> None:
    from mkt.runner import ImageRunner

    for amp in ("off", "bf16"):
        runner = ImageRunner(model, amp=amp)
        for batch in (256, 1024):
            record(f"model_only.{amp}.batch{batch}_img_s", round(model_only(runner, batch), 1))
    if compile_too:
        runner = ImageRunner(model, amp="bf16", compile=True)
        t0 = time.perf_counter()
        model_only(runner, 256, iters=1)
        record("model_only.bf16_compile.compile_s", round(time.perf_counter() - t0, 1))
        record("model_only.bf16_compile.batch256_img_s", round(model_only(runner, 256), 1))


def stage_decoders(paths: list[Path], geometry: Any) -> None:
    from torchvision.io import ImageReadMode, decode_jpeg

    from core.media.stills import read_image

    datas = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths[:256]]
    for chunk in (64, 128, 256):
        decode_jpeg(datas[:chunk], mode=ImageReadMode.RGB, device="cuda")
        sync()
        t0 = time.perf_counter()
        for start in range(0, len(datas), chunk):
            decode_jpeg(datas[start:start + chunk], mode=ImageReadMode.RGB, device="cuda")
        sync()
        record(f"decode.nvjpeg.chunk{chunk}_img_s", round(len(datas) / (time.perf_counter() - t0), 1))
    t0 = time.perf_counter()
    for p in paths[:24]:
        read_image(p, draft_size=geometry.draft_size)
    record("decode.cpu_draft_one_core_img_s", round(24 / (time.perf_counter() - t0), 1))
    t0 = time.perf_counter()
    for p in paths[:8]:
        read_image(p)
    record("decode.cpu_full_one_core_img_s", round(8 / (time.perf_counter() - t0), 1))


def stage_agreement(model: Any, paths: list[Path]) -> None:
    from core.media.stills import read_image
    from mkt.runner import ImageRunner
    from tagger.decode import PhotoFiles, collate, to_device

    sample = [(i, os.fsencode(p)) for i, p in enumerate(paths[:64])]
    runner = ImageRunner(model, amp="bf16")
    gpu_batch = collate([PhotoFiles(sample, model.preprocess, 10**9, runner.geometry, gpu_share=1.0)[i]
                         for i in range(len(sample))])
    gpu = runner.embed(to_device(gpu_batch, runner.geometry, runner.device, 10**9)).global_
    cpu_batch = collate([PhotoFiles(sample, model.preprocess, 10**9, runner.geometry)[i] for i in range(len(sample))])
    draft = runner.embed(cpu_batch["pixels"].to(runner.device)).global_
    full = torch.stack([model.preprocess(read_image(p)[0]) for p in paths[:64]]).to(runner.device)
    with torch.inference_mode():
        ref = model.encode_images(full, with_patches=False).global_
    for name, emb in (("gpu_nvjpeg_bf16", gpu), ("cpu_draft_bf16", draft)):
        cos = (emb.float() * ref.float()).sum(-1)
        record(f"agreement.{name}_vs_full_fp32.mean_cos", round(float(cos.mean()), 5))
        record(f"agreement.{name}_vs_full_fp32.min_cos", round(float(cos.min()), 5))


def stage_end_to_end(photos: Path, work: Path, n: int, label: str, shares: tuple[float, ...],
                     device: str = "cuda") -> None:
    """For each GPU-decode share: a new collection (labels encoded), then ``--retag``."""
    from core.settings import load_settings
    from tagger import vocabulary
    from tagger.jobs.run import run_job

    for share in shares:
        settings = load_settings(environ={}, home=str(work / f"home-{label}-{share}"), model=ARCH_SPEC,
                                 device=device, gpu_decode=share)
        for run, retag in (("first", False), ("second", True)):
            if not retag:
                vocabulary._label_cache.clear()  # a new collection encodes its labels (this process cached them)
            t0 = time.perf_counter()
            run_job(settings, [str(photos)], retag=retag)
            seconds = time.perf_counter() - t0
            record(f"end_to_end.{label}.gpu_share{share}.{run}_run_img_s", round(n / seconds, 1))
    record("end_to_end.settings", {"batch": settings.batch_for(device), "workers": settings.workers_for(device),
                                   "task_size": settings.task_size, "amp": settings.amp})


def _draft(path: Path) -> None:
    from core.media.stills import read_image

    read_image(path, draft_size=224)


def stage_cpu_pool(paths: list[Path]) -> None:
    """The CPU's ceiling: draft decodes in cpu_count - 1 processes."""
    from concurrent.futures import ProcessPoolExecutor

    procs = max(1, (os.cpu_count() or 2) - 1)
    sample = paths[:40 * procs]
    with ProcessPoolExecutor(procs) as pool:
        list(pool.map(_draft, sample[:procs]))
        t0 = time.perf_counter()
        list(pool.map(_draft, sample, chunksize=4))
    record(f"decode.cpu_draft_{procs}_processes_img_s", round(len(sample) / (time.perf_counter() - t0), 1))


def _ddp_worker() -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        net = DistributedDataParallel(torch.nn.Linear(512, 512).cuda(), device_ids=[0])
        loss = net(torch.randn(64, 512, device="cuda")).square().mean()
        loss.backward()
        t = torch.ones(1 << 20, device="cuda")
        dist.all_reduce(t)
        sync()
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
        record("ddp.nccl_one_process", {"ok": bool(t[0].item() == 1.0), "nccl": nccl,
                                        "loss": round(float(loss.detach()), 4)})
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="photos in the end-to-end runs")
    parser.add_argument("--distinct", type=int, default=96, help="photos rendered; the rest are byte-distinct copies")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (adds about a minute)")
    parser.add_argument("--json", default="", help="write the figures here too")
    parser.add_argument("--stages", default="model_only,decoders,agreement,end_to_end,small,ddp")
    parser.add_argument("--shares", default="1.0,0.7,0.0", help="GPU-decode shares of the 12 MP end-to-end runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tagger.tagging").setLevel(logging.INFO)  # where each run's time went
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (record 'no GPU' with the date)")
        return 2
    from bench.photos import write_photos
    from mkt.factory import get_model

    record("device", {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cpus": os.cpu_count(), "cuda": torch.version.cuda})
    work = Path(tempfile.mkdtemp(prefix="tagscope-gpu-"))
    t0 = time.perf_counter()
    paths = write_photos(work / "photos", args.n, distinct=args.distinct, processes=os.cpu_count())
    record("photos", {"n": len(paths), "mb_each": round(paths[0].stat().st_size / 1e6, 2),
                      "size": "4032x3024", "seconds_to_make": round(time.perf_counter() - t0, 1)})
    model = get_model(ARCH_SPEC, "cuda")
    from mkt.pixels import InputGeometry

    geometry = InputGeometry.of(model.preprocess)
    stages = set(args.stages.split(","))
    if "model_only" in stages:
        stage("model_only", lambda: stage_model_only(model, args.compile))
    if "decoders" in stages:
        stage("decoders", lambda: stage_decoders(paths, geometry))
        stage("cpu_pool", lambda: stage_cpu_pool(paths))
    if "agreement" in stages:
        stage("agreement", lambda: stage_agreement(model, paths))
    if "end_to_end" in stages:
        shares = tuple(float(v) for v in args.shares.split(","))
        stage("end_to_end", lambda: stage_end_to_end(work / "photos", work, args.n, "12MP", shares))
    if "small" in stages:
        small = write_photos(work / "small", args.n, (1600, 1200), distinct=args.distinct, processes=os.cpu_count())
        record("photos_small", {"n": len(small), "mb_each": round(small[0].stat().st_size / 1e6, 2),
                                "size": "1600x1200"})
        stage("end_to_end_small", lambda: stage_end_to_end(work / "small", work, args.n, "2MP", (1.0, 0.0)))
    if "ddp" in stages:
        stage("ddp", _ddp_worker)
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
