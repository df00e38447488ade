"""The real photos scikit-image ships inside its wheel (``skimage/data``, never a download) read by
OCR for ``bench.ocr``: what it reads on each, the words found where a photo has words, and the
words read where it has none (false positives).

Which photos carry text, looked at by eye: ``page.png`` (a photographed book page; its words
below), ``motorcycle_left.png`` / ``motorcycle_right.png`` (the YAMAHA badge on the tank, about
12 px high), ``text.png`` (handwritten formulas: symbols, not words; left out of both counts).
The rest carry no legible text.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.words import fold

PAGE = """Region-based segmentation
Let us first determine markers of the coins and the
background. These markers are pixels that we can label
unambiguously as either object or background. Here,
the markers are found at the two extreme parts of the
histogram of grey values:
>>> markers = np.zeros_like(coins)"""
WITH_WORDS = {"page.png": PAGE, "motorcycle_left.png": "YAMAHA", "motorcycle_right.png": "YAMAHA"}
HANDWRITING = {"text.png"}
PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
          "coins.png", "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png",
          "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
          "retina.jpg", "rocket.jpg", "text.png")


def data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def _found(truth: str, read: list[str]) -> tuple[int, int]:
    """(words of ``truth`` found among the words read, each read used once; words in truth)."""
    pool = list(read)
    found = 0
    for word in fold(truth).split():
        if word in pool:
            pool.remove(word)
            found += 1
    return found, len(fold(truth).split())


def real_photos(read, names=PHOTOS) -> dict:
    """Read the bundled photos ``names``; print a row each and the totals; the figures as a dict."""
    if not names:
        return {}
    folder = data_dir()
    print(f"\nreal photos bundled with scikit-image ({folder}; the files in its wheel only)")
    print(f"{'photo':>24} {'size':>10} {'s':>6}  words found / in it   read")
    found_all = total_all = false_reads = false_photos = textless = 0
    seconds = []
    for name in names:
        path = folder / name
        if not path.is_file():
            print(f"{name:>24} (not in this wheel)")
            continue
        rgb = np.asarray(Image.open(path).convert("RGB"))
        t0 = time.perf_counter()
        lines = read(rgb)
        seconds.append(time.perf_counter() - t0)
        words = [w for text, _, _ in lines for w in fold(text).split()]
        if name in WITH_WORDS:
            found, total = _found(WITH_WORDS[name], words)
            found_all, total_all = found_all + found, total_all + total
            verdict = f"{found} / {total}"
        elif name in HANDWRITING:
            verdict = "handwriting"
        else:
            textless += 1
            false_reads += len(words)
            false_photos += bool(words)
            verdict = f"no text: {len(words)} false" if words else "no text"
        shown = " | ".join(t for t, _, _ in lines)
        print(f"{name:>24} {rgb.shape[1]:>4}x{rgb.shape[0]:<5} {seconds[-1]:>6.2f}  {verdict:<20} "
              f"{shown[:90]}")
    print(f"words found on the photos with words: {found_all} / {total_all}; on the {textless} photos with no text "
          f"{false_photos} had words read, {false_reads} words in all")
    return {"words_found": found_all, "words": total_all, "textless_photos": textless,
            "textless_photos_with_reads": false_photos, "false_words": false_reads,
            "mean_s": float(np.mean(seconds)) if seconds else None}
