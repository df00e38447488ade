"""Photo-sized JPEGs for benchmarks and the draft-decode agreement test.

A synthetic-world scene (known labels) rendered small, enlarged to the size of a phone photo,
lit unevenly and given sensor noise, then saved as a JPEG as a camera would (quality 90, 4:2:0
chroma). The noise matters: without it an enlarged drawing compresses to a few hundred KB and
decodes far faster than a real 12 MP photo (2-5 MB, whose entropy decoding dominates).

    python -m bench.photos OUT_DIR --n 96 [--size 4032x3024]
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

PHONE = (4032, 3024)


def make_photo(seed: int, size: tuple[int, int] = PHONE, noise: float = 5.0) -> Image.Image:
    """One photo-like RGB image of ``size`` (width, height) from a synthetic scene."""
    from mkt.synthetic.render import render
    from mkt.synthetic.scenes import sample_scene

    rng = np.random.default_rng(seed)
    scene = render(sample_scene(rng), rng).convert("RGB")
    w, h = size
    base = np.asarray(scene.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    light = 1.15 - 0.35 * (((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2)  # vignette-like falloff
    grain = rng.normal(0.0, noise, size=(h, w, 1)).astype(np.float32)  # luminance noise
    chroma = rng.normal(0.0, noise / 2, size=(h, w, 3)).astype(np.float32)
    out = base * light[..., None] + grain + chroma
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _write(args: tuple[Path, int, tuple[int, int]]) -> Path:
    path, seed, size = args
    make_photo(seed, size).save(path, format="JPEG", quality=90, subsampling="4:2:0")
    return path


def write_photos(out_dir: str | os.PathLike, n: int, size: tuple[int, int] = PHONE, seed: int = 0,
                 distinct: int | None = None, processes: int | None = None) -> list[Path]:
    """``n`` JPEGs ``photo_00000.jpg``...; with ``distinct`` < n, only that many are rendered and
    the rest are byte-distinct copies (a unique JPEG comment after the SOI marker): the same
    decoding cost without the rendering time, and no content-hash duplicates."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    distinct = min(n, distinct or n)
    jobs = [(out / f"photo_{i:05d}.jpg", seed + i, size) for i in range(distinct)]
    with ProcessPoolExecutor(processes or min(8, os.cpu_count() or 1)) as pool:
        paths = list(pool.map(_write, jobs))
    for i in range(distinct, n):
        data = paths[i % distinct].read_bytes()
        comment = f"tagscope bench copy {i}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        path = out / f"photo_{i:05d}.jpg"
        path.write_bytes(data[:2] + segment + data[2:])
        paths.append(path)
    return paths


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--size", type=parse_size, default=PHONE, help="WIDTHxHEIGHT (default 4032x3024)")
    parser.add_argument("--distinct", type=int, default=None, help="render this many; the rest are copies")
    args = parser.parse_args(argv)
    paths = write_photos(args.out_dir, args.n, args.size, distinct=args.distinct)
    total = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} JPEGs in {args.out_dir}, {total / len(paths) / 1e6:.2f} MB each on average")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
