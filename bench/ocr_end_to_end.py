"""``bench.ocr`` end to end, as a user runs it: the generated photos tagged twice into fresh homes,
``tagscope tag FOLDER --no-ocr`` then ``--ocr`` (wall time of each command, so the ratio is what
OCR adds to a tagging run on this machine; a warm-up run on two photos first, so that a runtime
exported once per model version or files read for the first time count in neither), then
one-word searches through ``tagscope search`` (``text:"WORD"`` and a plain ``WORD``, ``-k 10
--json``) on the home tagged with OCR: recall@10 against the photos the word is rendered in, over
all hits and over the hits that carry words (found by their text, not as embedding neighbours),
and the precision of those.

The searches run the real command in this process (click's runner: the model loads once for all
queries); the tagging runs are processes of their own, timed whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.ocr_score import recall_at_10, relevant_photos

ROOT = Path(__file__).resolve().parent.parent


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGSCOPE_") or k == "TAGSCOPE_RUNTIME_CACHE"}
    env.update(TAGSCOPE_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return env


def ocr_flag_exists() -> bool:
    done = subprocess.run([sys.executable, "-m", "tagscope", "tag", "--help"], env=_env(ROOT / "no-home"),
                          capture_output=True, text=True)
    return "--ocr" in done.stdout


def timed_tag(home: Path, folder: Path, model: str, ocr: bool) -> float:
    """Seconds ``tagscope tag`` takes, start to exit, on a fresh home."""
    args = [sys.executable, "-m", "tagscope", "tag", str(folder), "--model", model, "--ocr" if ocr else "--no-ocr"]
    t0 = time.perf_counter()
    done = subprocess.run(args, env=_env(home), capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[2:])} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return took


def search_here(home: Path, query: str) -> list[tuple[str, bool]]:
    """``tagscope search QUERY -k 10 --json`` in this process: the photos' file names, best first,
    each with whether the hit carries words found in the photo's text."""
    from click.testing import CliRunner

    from tagscope.cli import cli

    env = {k: None for k in os.environ if k.startswith("TAGSCOPE_") and k != "TAGSCOPE_RUNTIME_CACHE"}
    env.update(TAGSCOPE_HOME=str(home), HF_HUB_OFFLINE="1")
    result = CliRunner().invoke(cli, ["search", query, "-k", "10", "--json"], env=env, prog_name="tagscope")
    if result.exit_code != 0:
        raise SystemExit(f"tagscope search {query!r} exited {result.exit_code}: {result.output}{result.exception!r}")
    return [(Path(hit["path"]).name, bool(hit.get("words"))) for hit in json.loads(result.stdout)["results"]]


def precision_of_worded(ranked: dict[str, list[tuple[str, bool]]], relevant: dict[str, set[str]]) -> float:
    """Of the hits carrying words (found by their text), the share that has the word rendered."""
    hits = [(q, name) for q, rows in ranked.items() for name, worded in rows if worded]
    return sum(name in relevant.get(q, set()) for q, name in hits) / len(hits) if hits else float("nan")


def search_figures(home: Path, truth: list[dict]) -> dict:
    """recall@10 of ``text:"WORD"`` and plain ``WORD`` for every word of the list rendered somewhere:
    over all hits, and over the hits found by their words only (a plain query's embedding neighbours
    left out); the precision of the hits found by their words."""
    out = {}
    queries = sorted(relevant_photos(truth))
    everywhere = relevant_photos(truth)
    for kind, form in (("text:", 'text:"{}"'), ("plain", "{}")):
        ranked = {q: search_here(home, form.format(q)) for q in queries}
        names = {q: [name for name, _ in rows] for q, rows in ranked.items()}
        worded = {q: [name for name, w in rows if w] for q, rows in ranked.items()}
        for label, min_height in (("all heights", 0.0), (">= 20 px", 20.0)):
            relevant = relevant_photos(truth, min_height)
            out[f"{kind} recall@10, {label}"] = recall_at_10(names, relevant)
            out[f"{kind} recall@10 by words alone, {label}"] = recall_at_10(worded, relevant)
        out[f"{kind} precision of hits with words"] = precision_of_worded(ranked, everywhere)
    return out


def end_to_end(folder: Path, truth: list[dict], work: Path, model: str) -> dict:
    if not ocr_flag_exists():
        print("\nend to end: `tagscope tag` has no --ocr yet (the pipeline's OCR has not landed); run with --direct")
        return {"skipped": "tagscope tag has no --ocr"}
    warm = work / "warm-up"
    warm.mkdir()
    for row in truth[:2]:
        (warm / row["file"]).write_bytes((folder / row["file"]).read_bytes())
    timed_tag(work / "home-warm", warm, model, ocr=True)  # a runtime export or first load is not OCR's cost
    plain = timed_tag(work / "home-plain", folder, model, ocr=False)
    with_ocr = timed_tag(work / "home-ocr", folder, model, ocr=True)
    n = len(truth)
    print(f"\ntagging run, {n} photos, model {model} ({os.cpu_count()} cores), wall time of `tagscope tag` "
          "(a fresh home each; the process's start and model load included):")
    print(f"  without OCR {plain:8.1f} s\n  with OCR    {with_ocr:8.1f} s\n  ratio       {with_ocr / plain:8.2f}x"
          f"   (+{(with_ocr - plain) / n:.3f} s per photo)")
    out = {"tag_s_without_ocr": plain, "tag_s_with_ocr": with_ocr, "ratio": with_ocr / plain}
    search = search_figures(work / "home-ocr", truth)
    print(f"\nsearch by a word end to end (tagscope search -k 10 --json, {len(relevant_photos(truth))} one-word "
          "queries)")
    for key, value in search.items():
        print(f"  {key:<44} {value:.3f}")
    return {**out, "search": search}
