"""Words in photos, measured: how many words OCR finds by their height, how precisely, how fast,
what search by a word finds, and what OCR adds to a tagging run.

    python -m bench.ocr [--n 200] [--seed 33] [--direct] [--param Det.box_thresh=0.5 ...]

On ``--n`` generated photos (:mod:`bench.ocr_photos`: words of a fixed list, accented ones and
numbers among them, in eight DejaVu fonts, 10-80 px high, turned up to 15 degrees, on noise,
gradients, synthetic-world scenes and crops of real photos, JPEG quality 60-95; a quarter carry
no words) and on the photos scikit-image bundles in its wheel (never a download):

- word recall and precision by word height (:mod:`bench.ocr_score`, words compared folded as
  search folds them), words read where there are none, and on the real photos what was read;
- seconds per photo with words and without, the OCR engine alone on this machine's cores;
- search recall@10 for a one-word query: end to end, ``tagscope tag FOLDER --ocr`` then
  ``tagscope search 'text:"WORD"'`` and a plain ``WORD``; with ``--direct`` (or before the
  pipeline reads text) the same ranking done over the bench's own reads;
- the cost of OCR on a tagging run: the same photos tagged with and without ``--ocr``, timed in
  this one run, and the ratio.

``--param KEY=VALUE`` passes engine settings through (rapidocr's names, e.g. ``Det.box_thresh``,
``Global.text_score``) to see what a setting changes. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.ocr_photos import generate, read_truth, size_group
from bench.ocr_real import PHOTOS, real_photos
from bench.ocr_score import Tally, print_table, rank_direct, recall_at_10, relevant_photos
from core.words import fold

Lines = list[tuple[str, float, list]]


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def rapidocr_reader(params: dict):
    """rapidocr called directly (what the bench used before ``mkt.ocr`` existed), its own defaults
    and ``params`` over them: RGB array -> lines."""
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error", **params})

    def read(rgb: np.ndarray) -> Lines:
        r = engine(np.ascontiguousarray(rgb[..., ::-1]))  # an array is taken as OpenCV's BGR
        if r is None or r.txts is None or not len(r.txts):
            return []
        return [(t, float(s), np.asarray(b).tolist()) for t, s, b in zip(r.txts, r.scores, r.boxes)]

    return read


def mkt_reader(params: dict):
    """The product's engine as the pipeline calls it: :func:`mkt.ocr.bounded` (the size bound), then
    :meth:`mkt.ocr.OcrEngine.read` (its settings, confidence and length filters), boxes in the photo's
    pixels. ``params`` override its rapidocr settings (to see what one changes)."""
    from mkt import ocr

    engine = ocr.engine_for("cpu")
    if params:
        import rapidocr

        engine = ocr.OcrEngine("cpu")
        engine._engine = rapidocr.RapidOCR(params={**ocr._params("cpu"), **params})  # the bench's override

    def read(rgb: np.ndarray) -> Lines:
        small = ocr.bounded(rgb)
        scale = ocr.ratio(rgb.shape[1], rgb.shape[0], small)
        return [(line.text, line.confidence, line.box) for line in engine.read(small, scale)]

    return read


def make_reader(which: str, params: dict):
    if which == "auto":
        which = "mkt" if importlib.util.find_spec("mkt.ocr") else "rapidocr"
    return which, (mkt_reader if which == "mkt" else rapidocr_reader)(params)


def engine_name(which: str) -> str:
    from importlib.metadata import version

    if which == "mkt":
        from mkt import ocr

        return f"mkt.ocr: {ocr.engine_id()}, onnxruntime {version('onnxruntime')}"
    return f"rapidocr {version('rapidocr')} with its own defaults (PP-OCRv6 det small, PP-OCRv6 rec small, " \
           f"PP-OCRv4 mobile cls), onnxruntime {version('onnxruntime')}"


def read_folder(read, folder: Path, truth: list[dict]) -> tuple[dict[str, Lines], dict[str, float]]:
    """Every photo read once (after one warm-up read): its lines and the engine's seconds on it."""
    lines, seconds = {}, {}
    read(np.asarray(Image.open(folder / truth[0]["file"]).convert("RGB")))
    for row in truth:
        rgb = np.asarray(Image.open(folder / row["file"]).convert("RGB"))
        t0 = time.perf_counter()
        lines[row["file"]] = read(rgb)
        seconds[row["file"]] = time.perf_counter() - t0
    return lines, seconds


def timing_rows(truth: list[dict], seconds: dict[str, float]) -> dict:
    """Seconds per photo with words and without, over all photos and by size group."""
    out = {}
    names = sorted({size_group(r) for r in truth})
    groups = [("all", truth)] + [(g, [r for r in truth if size_group(r) == g]) for g in names]
    for group, members in groups:
        for label, rows in (("with words", [r for r in members if r["words"]]),
                            ("without words", [r for r in members if not r["words"]])):
            s = [seconds[r["file"]] for r in rows]
            if s:
                out[f"{group}, {label}"] = {"photos": len(s), "mean_s": statistics.fmean(s),
                                            "median_s": statistics.median(s), "p90_s": float(np.percentile(s, 90))}
    return out


def print_timing(timing: dict) -> None:
    print(f"\nseconds per photo, the OCR engine alone after decoding ({os.cpu_count()} cores, onnxruntime's default "
          "threads)")
    print(f"{'photos':>40} {'n':>5} {'mean s':>8} {'median s':>9} {'p90 s':>7}")
    for label, t in timing.items():
        print(f"{label:>40} {t['photos']:>5} {t['mean_s']:>8.3f} {t['median_s']:>9.3f} {t['p90_s']:>7.3f}")


def direct_search(truth: list[dict], lines: dict[str, Lines]) -> dict:
    """recall@10 of one-word queries ranked over the bench's own reads (exact, and one edit allowed)."""
    out = {}
    for label, min_height in (("all heights", 0.0), (">= 20 px", 20.0)):
        relevant = relevant_photos(truth, min_height)
        for tolerant in (False, True):
            ranked = {q: rank_direct(lines, q, tolerant) for q in relevant}
            out[f"{label}, {'one edit allowed' if tolerant else 'exact'}"] = recall_at_10(ranked, relevant)
    return out


def print_search(title: str, figures: dict, queries: int) -> None:
    print(f"\n{title} ({queries} one-word queries; recall@10 = found in the top 10 / min(10, photos with the word))")
    for label, value in figures.items():
        print(f"  {label:<44} {value:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ocr", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="generated photos")
    p.add_argument("--seed", type=int, default=33)
    p.add_argument("--direct", action="store_true", help="no tagging run: OCR and search over its reads only")
    p.add_argument("--engine", choices=("auto", "mkt", "rapidocr"), default="auto",
                   help="mkt.ocr (the product's) when it exists, else rapidocr called here")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="an engine setting")
    p.add_argument("--model", default="open_clip:ViT-B-32",
                   help="the tagging model of the end-to-end runs (default: the default model's architecture, "
                   "random weights)")
    p.add_argument("--missed", type=int, default=15, help="missed words >= 20 px to list")
    p.add_argument("--real", default=",".join(PHOTOS), help="the bundled real photos to read (comma-separated "
                   "file names; empty: none)")
    args = p.parse_args(argv)
    params = {k: _value(v) for k, v in (item.split("=", 1) for item in args.param)}
    which, read = make_reader(args.engine, params)
    print(f"engine: {engine_name(which)}{' ' + json.dumps(params) if params else ''}")
    with tempfile.TemporaryDirectory(prefix="tagscope-bench-ocr-") as tmp:
        folder = generate(Path(tmp) / "photos", args.n, args.seed)
        truth = read_truth(folder)
        summary = measure(args, read, folder, truth)
        if not args.direct:
            from bench.ocr_end_to_end import end_to_end

            summary["end_to_end"] = end_to_end(folder, truth, Path(tmp), args.model)
    summary["real"] = real_photos(read, [name for name in args.real.split(",") if name])
    summary.update(engine=engine_name(which), params=params, n=args.n, seed=args.seed, cores=os.cpu_count())
    print(json.dumps(summary, ensure_ascii=False))
    return 0


FIELDS = ("words", "found", "recall", "recall_one_edit", "read", "precision")


def tally_all(truth: list[dict], lines: dict[str, Lines]) -> tuple[Tally, dict[str, Tally]]:
    """Every photo counted, and again by its size group."""
    tally, by_size = Tally(), {}
    for row in truth:
        tally.add(row, lines[row["file"]])
        by_size.setdefault(size_group(row), Tally()).add(row, lines[row["file"]])
    return tally, dict(sorted(by_size.items()))


def print_by_size(by_size: dict[str, Tally]) -> None:
    print("\nword recall by photo size (OCR sees at most 2,000 px of it, its detector at most 960 px with mkt.ocr)")
    print(f"{'photo':>18} {'10-20 px':>15} {'>= 20 px':>15} {'all heights':>15} {'precision':>10}")
    for group, t in by_size.items():
        rows = {row[0]: row for row in t.rows()}
        small = [rows["10-15"], rows["15-20"]]
        n_small, f_small = sum(r[1] for r in small), sum(r[2] for r in small)
        cells = [(f_small, n_small)] + [(rows[k][2], rows[k][1]) for k in (">= 20 px", "all heights")]
        text = " ".join(f"{f:>4}/{n:<4} {f / n if n else float('nan'):.3f}" for f, n in cells)
        print(f"{group:>18} {text} {rows['all heights'][6]:>10.3f}")


def print_breakdown(truth: list[dict], tally: Tally) -> dict:
    """Recall of the words >= 20 px by how far they are turned and by font (is it rotation? a font?)."""
    missed = {(m[0], m[1]) for m in tally.missed}
    words = [(row["file"], w) for row in truth for w in row["words"] if w["height"] >= 20]
    groups: dict[str, list[bool]] = {}
    for file, w in words:
        turn = min(int(abs(w["angle"]) // 5), 2)
        for key in (f"turned {5 * turn}-{5 * turn + 5} deg", w["font"].removesuffix(".ttf")):
            groups.setdefault(key, []).append((file, w["text"]) not in missed)
    print("\nrecall of words >= 20 px by turn and by font")
    for key, hits in sorted(groups.items()):
        if key.startswith("turned"):
            print(f"  {key:<30} {sum(hits):>4} / {len(hits):<4} {sum(hits) / len(hits):.3f}")
    for key, hits in sorted((k, v) for k, v in groups.items() if not k.startswith("turned")):
        print(f"  {key:<30} {sum(hits):>4} / {len(hits):<4} {sum(hits) / len(hits):.3f}")
    return {key: sum(hits) / len(hits) for key, hits in groups.items()}


def print_missed(tally: Tally, first: int) -> None:
    big = [m for m in tally.missed if m[2] >= 20]
    print(f"\nmissed words >= 20 px: {len(big)} (first {first}: file, word, height, angle, font, "
          "background, lines read)")
    for m in big[:first]:
        print("  ", *m)


def measure(args, read, folder: Path, truth: list[dict]) -> dict:
    """The generated set: recall and precision by height, what was missed, timing, direct search."""
    print(f"generated: {len(truth)} photos (seed {args.seed}), {sum(len(r['words']) for r in truth)} words, "
          f"{sum(not r['words'] for r in truth)} photos without words")
    lines, seconds = read_folder(read, folder, truth)
    tally, by_size = tally_all(truth, lines)
    print_table(tally, "word recall and precision by word height (ink height before turning; words folded)")
    print_by_size(by_size)
    breakdown = print_breakdown(truth, tally)
    print_missed(tally, args.missed)
    empty = [r for r in truth if not r["words"]]
    false_reads = sum(len(fold(t).split()) for r in empty for t, _, _ in lines[r["file"]])
    print(f"\nphotos without words: {len(empty)}, words read on them: {false_reads}, photos with any: "
          f"{sum(bool(lines[r['file']]) for r in empty)}")
    timing = timing_rows(truth, seconds)
    print_timing(timing)
    search = direct_search(truth, lines)
    print_search("search by a word over the engine's reads (direct)", search, len(relevant_photos(truth)))
    return {"by_height": {row[0]: dict(zip(FIELDS, row[1:])) for row in tally.rows()},
            "by_size_20px_up": {g: dict(zip(FIELDS, t.rows()[-2][1:])) for g, t in by_size.items()},
            "by_turn_and_font_20px_up": breakdown, "read_nowhere": tally.wrong["nowhere"], "no_word_photos": len(empty),
            "words_read_on_no_word_photos": false_reads, "seconds": timing, "direct_search_recall_at_10": search}


if __name__ == "__main__":
    raise SystemExit(main())
