"""Calibrated "matches": precision and recall of the cutoff per label family, seen and unseen.

    python -m bench.relevance --model synthetic --model mkt:BUNDLE.pt [--n 1000] [--grid]

For each model: tag a held-out synthetic collection, then search every label of the world (126:
colours, shapes, backgrounds, colour-shape compounds) and a few texts that describe nothing in it
over the whole collection through the product's search (:meth:`Searcher.find`), and count the
results flagged ``match`` against the ground truth in labels.jsonl. "Unseen" are the 20 compound
labels that the MKT results table holds out of MKT training (a plain CLIP model saw every label
in pretraining). Precision, recall and F1 are micro-averaged over the labels of a family.

Two collections: the validation set (seed EVAL_SEED + 1), on which ``--grid`` prints F1 for other
values of ALPHA and GUARD (how the constants in indexer/relevance.py were chosen), and the test
set (EVAL_SEED), on which the shipped constants are reported.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from core.settings import load_settings
from indexer import relevance
from indexer.search import Searcher
from mkt.synthetic import EVAL_SEED, generate, synthetic_split
from mkt.synthetic.scenes import label_families
from tagger.tag_job import run_tag_job

NOTHING = ["crimson object", "a dog", "sunset over the sea", "tax return", "magenta hexagon", "xyzzy"]


def _truth(photos: Path) -> dict[str, set[str]]:
    rows = [json.loads(line) for line in (photos / "labels.jsonl").read_text().splitlines()]
    return {str((photos / r["file"]).resolve()): set(r["labels"]) for r in rows}


def searches(spec: str, photos: Path, home: Path) -> tuple[dict[str, tuple], dict[str, set[str]]]:
    """label -> (scores by path, Cutoff) over the whole collection, and the ground truth."""
    settings = load_settings(environ={}, home=str(home), model=spec, device="cpu", loader_workers=0)
    run_tag_job(settings, [str(photos)])
    searcher = Searcher(settings)
    truth = _truth(photos)
    out = {}
    for text in [label for family in label_families().values() for label in family] + NOTHING:
        results = searcher.find(text, k=min(len(truth), 1000))
        out[text] = ({h.path: h.score for h in results.hits}, results.cutoff)
    return out, truth


def cutoff_value(cutoff: relevance.Cutoff, alpha: float, guard: float) -> float | None:
    if not cutoff.top > cutoff.median or cutoff.margin < guard:
        return None
    return cutoff.median + alpha * (cutoff.top - cutoff.median)


def groups(unseen: list[str]) -> dict[str, list[str]]:
    families = label_families()
    out = {name: [lb for lb in labels if lb not in unseen] for name, labels in families.items()}
    out["compound"] = [lb for lb in families["compound"] if lb not in unseen]
    out["compound, unseen"] = list(unseen)
    return out


def score(runs: dict, truth: dict[str, set[str]], labels: list[str], alpha: float, guard: float
          ) -> dict[str, float]:
    tp = fp = fn = 0
    for label in labels:
        scores, cutoff = runs[label]
        value = cutoff_value(cutoff, alpha, guard)
        matched = {p for p, s in scores.items() if value is not None and s >= value}
        positive = {p for p, names in truth.items() if label in names}
        tp, fp, fn = tp + len(matched & positive), fp + len(matched - positive), fn + len(positive - matched)
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9)}


def table(results: dict[str, dict]) -> str:
    lines = ["| model | family | labels | precision | recall | F1 |", "|---|---|---|---|---|---|"]
    for spec, fams in results.items():
        for name, r in fams.items():
            if name == "nothing":
                continue
            lines.append(f"| `{spec}` | {name} | {r['labels']} | {100 * r['precision']:.1f} | "
                         f"{100 * r['recall']:.1f} | {100 * r['f1']:.1f} |")
        lines.append(f"| `{spec}` | texts that describe nothing here | {len(NOTHING)} | photos flagged: "
                     f"{fams['nothing']} | | |")
    return "\n".join(lines)


def run_set(specs: list[str], n: int, seed: int, tmp: Path) -> dict[str, tuple]:
    photos = generate(tmp / f"photos-{seed}", n=n, seed=seed)
    return {spec: searches(spec, photos, tmp / f"home-{seed}-{i}") for i, spec in enumerate(specs)}


def report(sets: dict[str, tuple], unseen: list[str], alpha: float, guard: float) -> dict[str, dict]:
    results = {}
    for spec, (runs, truth) in sets.items():
        fams = {name: {**score(runs, truth, labels, alpha, guard), "labels": len(labels)}
                for name, labels in groups(unseen).items()}
        fams["nothing"] = sum(
            1 for text in NOTHING for s in runs[text][0].values()
            if (v := cutoff_value(runs[text][1], alpha, guard)) is not None and s >= v)
        results[spec] = fams
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relevance", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, help="model spec (repeat)")
    p.add_argument("--n", type=int, default=1000, help="held-out images per set")
    p.add_argument("--grid", action="store_true", help="also print F1 on the validation set for other constants")
    args = p.parse_args(argv)
    unseen = synthetic_split(20, seed=0).unseen
    with tempfile.TemporaryDirectory(prefix="tagscope-relevance-") as tmp:
        if args.grid:
            validation = run_set(args.model, args.n, EVAL_SEED + 1, Path(tmp))
            for alpha in (0.5, 0.6, 0.65, 0.7, 0.72, 0.75, 0.8):
                for guard in (-1.0, -0.1, 0.0):
                    r = report(validation, unseen, alpha, guard)
                    cells = " ".join(f"{name[:12]}={100 * v['f1']:.0f}" for fams in r.values()
                                     for name, v in fams.items() if name != "nothing")
                    nothing = [f["nothing"] for f in r.values()]
                    print(f"validation alpha={alpha} guard={guard}: {cells} nothing={nothing}")
        test = run_set(args.model, args.n, EVAL_SEED, Path(tmp))
        results = report(test, unseen, relevance.ALPHA, relevance.GUARD)
    print(f"test set (seed {EVAL_SEED}, {args.n} photos), alpha={relevance.ALPHA}, guard={relevance.GUARD}")
    print(table(results))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
