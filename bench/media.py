"""Real libraries' files: decode time per kind, and a phone-like library against as many JPEGs.

    python -m bench.media [--n 100] [--model synthetic] [--model open_clip:ViT-B-32] [--size 2016x1512]

1. decode, per file, at the model's input size (``read_media(draft_size=224)``, median of 5 on
   the same file): a JPEG (draft mode), a HEIC with the 320 px thumbnail phones embed and one
   without, a 24 MP RAW by its embedded preview and by a half-size demosaic (target: preview at
   least 5x faster), a 10 s 720p video (its 5 sampled frames);
2. a library mixed like a phone's (70% HEIC with the thumbnails phones embed, 20% JPEG, 10% 3 s
   videos), and the same with HEICs that have no thumbnail (other cameras, editors), against the
   same number of JPEGs, each tagged from nothing by ``run_job`` with the same model, side by side
   in this run: items per second and their ratio (target: >= 0.7).

Photos are photo-like (noise, uneven light: bench.photos), ``--size`` a side (3 MP by default:
x265 takes ~1.5 s to write one at ``ultrafast``). Prints figures as they come and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from bench.photos import make_photo

RAW_SIZE = (4000, 3000)
RAW_PREVIEW = 1616  # the long side of a camera's embedded JPEG preview (as in the probe's 24 MP DNG)


def _timed(fn, repeats: int = 5) -> float:
    fn()  # warm: imports, the first open
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def decode_times(tmp: Path, size: tuple[int, int], draft: int) -> dict[str, float]:
    """Median seconds to decode one file of each kind at ``draft``, read_media as the workers call it."""
    from bench.library import Shot, write_dng, write_still, write_video
    from core.media.read import read_media

    photo = make_photo(1, size)
    files = {
        "jpeg": write_still(tmp / "d.jpg", photo),
        "heic (phone thumbnail)": write_still(tmp / "d_thumb.heic", photo, heic_preset="ultrafast"),
        "heic (no thumbnail)": write_still(tmp / "d_full.heic", photo, heic_thumbnail=None, heic_preset="ultrafast"),
    }
    raw = write_dng(tmp / "d.dng", make_photo(2, RAW_SIZE), Shot(), preview=RAW_PREVIEW)
    clip = write_video(tmp / "d.mp4", [make_photo(3 + i, (1280, 720)) for i in range(5)], fps=30, seconds_each=2.0)
    out = {name: _timed(lambda p=path: read_media(p, draft_size=draft)) for name, path in files.items()}
    out["raw 24 MP, preview"] = _timed(lambda: read_media(raw, draft_size=draft))
    out["raw 24 MP, half-size demosaic"] = _timed(lambda: read_media(raw, draft_size=RAW_PREVIEW + 1))
    out["video 10 s 720p (5 frames)"] = _timed(lambda: read_media(clip, draft_size=draft), repeats=3)
    return out


def libraries(root: Path, n: int, size: tuple[int, int]) -> dict[str, Path]:
    """n JPEGs, and n items mixed like a phone's (HEICs with the thumbnail phones embed, and the
    same without one, as other cameras and editors write them): the same pictures throughout."""
    from bench.library import write_still, write_video

    out = {name: root / name for name in ("jpegs", "phone", "phone, HEIC without thumbnails")}
    videos = max(1, round(0.1 * n))
    heics = round(0.7 * n)
    for i in range(n):
        photo = make_photo(100 + i, size)
        write_still(out["jpegs"] / f"IMG_{i:04d}.JPG", photo)
        if i < heics:
            write_still(out["phone"] / f"IMG_{i:04d}.HEIC", photo, heic_preset="ultrafast")
            write_still(out["phone, HEIC without thumbnails"] / f"IMG_{i:04d}.HEIC", photo, heic_thumbnail=None,
                        heic_preset="ultrafast")
            continue
        if i < n - videos:
            kept = [write_still(out["phone"] / f"IMG_{i:04d}.JPG", photo)]
        else:
            frames = [make_photo(1000 + 3 * i + j, (1280, 720)) for j in range(2)]
            kept = [write_video(out["phone"] / f"IMG_{i:04d}.MP4", frames, fps=30, seconds_each=1.5)]
        for path in kept:
            (out["phone, HEIC without thumbnails"] / path.name).write_bytes(path.read_bytes())
    return out


def tag_rate(folder: Path, home: Path, model: str) -> float:
    """Items per second of ``run_job`` on a new collection of ``folder`` (model load excluded)."""
    from core.settings import load_settings
    from mkt.factory import get_model
    from tagger.jobs.run import run_job

    settings = load_settings(environ={}, home=str(home), model=model, device="cpu")
    get_model(model, "cpu")  # loaded once, outside the timing
    n = sum(1 for p in folder.iterdir() if p.is_file())
    t0 = time.perf_counter()
    run_job(settings, [str(folder)])
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100, help="items in each library")
    p.add_argument("--model", action="append", help="model spec (repeat; default: synthetic)")
    p.add_argument("--size", default="2016x1512", help="photo size WxH")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    models = args.model or ["synthetic"]
    result: dict = {"size": list(size), "n": args.n}
    with tempfile.TemporaryDirectory(prefix="tagscope-media-") as tmp:
        root = Path(tmp)
        decode = decode_times(root, size, draft=224)
        for name, seconds in decode.items():
            print(f"decode {name:32s} {1000 * seconds:8.1f} ms")
        ratio = decode["raw 24 MP, half-size demosaic"] / decode["raw 24 MP, preview"]
        print(f"RAW: preview {ratio:.1f}x faster than a half-size demosaic (target >= 5)")
        result["decode_ms"] = {k: round(1000 * v, 2) for k, v in decode.items()}
        result["raw_preview_speedup"] = round(ratio, 2)
        t0 = time.perf_counter()
        folders = libraries(root, args.n, size)
        print(f"libraries written in {time.perf_counter() - t0:.0f} s")
        for model in models:
            rates = {name: tag_rate(folder, root / f"home-{i}", model)
                     for i, (name, folder) in enumerate(folders.items())}
            row = {name: round(rate, 2) for name, rate in rates.items()}
            print(f"{model}: {args.n} JPEGs {rates['jpegs']:.1f} items/s")
            for name in list(folders)[1:]:
                row[f"ratio: {name}"] = round(rates[name] / rates["jpegs"], 3)
                print(f"  {name}: {rates[name]:.1f} items/s, ratio {rates[name] / rates['jpegs']:.2f} (target >= 0.7)")
            result.setdefault("libraries", {})[model] = row
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
