"""A user's keyword tree imported over a tagged collection, timed: ``tagscope labels import``
of a 5,000-keyword Lightroom file over 10^4 images of stored embeddings.

    python -m bench.keyword_import [--n 10000] [--keywords 5000] [--real 200]

Tags --real generated photos through the real pipeline with the bundled ``synthetic`` model
(its 126 flat labels), grows the collection to --n images that reuse their stored embeddings
(as ``bench.relabel`` does), then writes a Lightroom keyword file of --keywords keywords (a group
at the top, categories, sub-categories, leaves with a synonym every tenth; the model's shape
labels among the leaves, so existing tagged labels move into the tree and "circle", which gets
children, stops being scored) and times what ``labels import`` does: read and check the file,
apply it in one transaction, then score the new leaves and the images whose tags changed from
the stored embeddings (no photo read). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.relabel import _grow
from core.settings import load_settings
from migrations import get_database
from mkt.synthetic import generate
from tagger.jobs.run import run_job
from tagger.keyword_files import read_keyword_file
from tagger.keyword_tree_store import import_tree, settle

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "heart", "crescent", "arrow")


def keyword_file(path: Path, total: int) -> int:
    """A Lightroom keyword file of about ``total`` keywords; returns how many it holds."""
    lines = ["[Collections]", "\tShapes"]
    lines += [f"\t\t{shape}" for shape in SHAPES]
    lines += ["\t\t\tred circle", "\t\t\tblue circle"]  # circle is inner now: implied, not scored
    count, category = 2 + len(SHAPES) + 2, 0
    while count < total:
        lines.append(f"\ttopic {category}")
        count += 1
        for sub in range(4):
            if count >= total:
                break
            lines.append(f"\t\ttopic {category} theme {sub}")
            count += 1
            for leaf in range(min(24, total - count)):
                lines.append(f"\t\t\ttopic {category} theme {sub} subject {leaf}")
                if leaf % 10 == 0:
                    lines.append(f"\t\t\t\t{{subject {leaf} of theme {sub} in topic {category}}}")
                count += 1
        category += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.keyword_import", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--keywords", type=int, default=5_000)
    p.add_argument("--real", type=int, default=200, help="photos tagged through the pipeline (the rest reuse them)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tagscope-bench-keywords-") as tmp:
        work = Path(tmp)
        generate(work / "photos", n=args.real, seed=11)
        settings = load_settings(environ={}, home=str(work / "home"), model="synthetic", device="cpu")
        run_job(settings, [str(work / "photos")])
        _grow(settings, args.n)
        keywords = keyword_file(work / "keywords.txt", args.keywords)
        t0 = time.perf_counter()
        parsed = read_keyword_file(work / "keywords.txt")
        t1 = time.perf_counter()
        counts = import_tree(get_database(settings.db_url), parsed)
        t2 = time.perf_counter()
        scored, again = settle(settings)
        t3 = time.perf_counter()
    print(f"keyword file : {keywords} keywords, read and checked in {t1 - t0:.2f} s")
    print(f"one transaction: {counts['added']} added, {counts['moved']} moved, {counts['to_score']} to score, "
          f"{counts['unscored']} no longer scored, in {t2 - t1:.2f} s")
    print(f"scoring      : {counts['to_score']} leaves for {scored} tagged images, {again} images scored again, "
          f"from stored embeddings in {t3 - t2:.2f} s (no photo read)")
    print(f"total        : {t3 - t0:.2f} s")
    print(json.dumps({"n": scored, "keywords": keywords, "leaves_scored": counts["to_score"],
                      "rescored_images": again, "read_s": round(t1 - t0, 3), "apply_s": round(t2 - t1, 3),
                      "score_s": round(t3 - t2, 3), "total_s": round(t3 - t0, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
