"""Calibrated "matches": precision and recall of the cutoff per label family, seen and unseen.

    python -m bench.relevance --model synthetic --model synthetic-mkt \
        --model mkt:runs/synthetic-mkt/seed1.pt --model mkt:runs/synthetic-mkt/seed2.pt [--n 1000] [--grid]

For each model: tag a held-out synthetic collection, then search every label of the world (126:
colours, shapes, backgrounds, colour-shape compounds) and a few texts that describe nothing in it
over the whole collection through the product's search (:meth:`Searcher.find`), and count the
results flagged ``match`` against the ground truth in labels.jsonl. "Unseen" are the 20 compound
labels that the MKT results table holds out of MKT training (a plain CLIP model saw every label
in pretraining). Precision, recall and F1 are micro-averaged over the labels of a family.

Two collections: the validation set (seed EVAL_SEED + 1), on which ``--grid`` prints F1 for other
values of alpha and guard (how the defaults in mkt/calibration.py were chosen) and on which
``--fit`` fits an MKT bundle's constants on its seen labels (``python -m mkt.training.calibrate``, on a
copy of the bundle), and the test set (EVAL_SEED), on which each model's constants are reported.
Also per model: the search mAP of the unseen compounds (each ranked over the whole collection),
and, for the bundles built by ``tagscope synth mkt`` (several seeds), the mean and standard
deviation of every figure over them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench.search_quality import _truth
from core.settings import load_settings
from indexer.search.searcher import Searcher
from mkt.calibration import Constants, cutoff_value
from mkt.synthetic import EVAL_SEED, generate, synthetic_split
from mkt.synthetic.scenes import label_families
from mkt.training.calibrate import fit_bundle
from mkt.training.metrics import mean_average_precision
from tagger.jobs.run import run_job

NOTHING = ["crimson object", "a dog", "sunset over the sea", "tax return", "magenta hexagon", "xyzzy"]


def searches(spec: str, photos: Path, home: Path) -> tuple[dict[str, tuple], dict[str, set[str]]]:
    """label -> (scores by path, Cutoff) over the whole collection, and the ground truth."""
    settings = load_settings(environ={}, home=str(home), model=spec, device="cpu", loader_workers=0)
    run_job(settings, [str(photos)])
    searcher = Searcher(settings)
    truth = _truth(photos)
    out = {}
    for text in [label for family in label_families().values() for label in family] + NOTHING:
        results = searcher.find(text, k=min(len(truth), 1000))
        out[text] = ({h.path: h.score for h in results.hits}, results.cutoff)
    return out, truth


def value_of(cutoff, constants: Constants | None) -> float | None:
    """The cutoff under other constants (None: the model's own, as search used them)."""
    return cutoff_value(cutoff.stats, constants or cutoff.constants)


def groups(unseen: list[str]) -> dict[str, list[str]]:
    families = label_families()
    out = {name: [lb for lb in labels if lb not in unseen] for name, labels in families.items()}
    out["compound"] = [lb for lb in families["compound"] if lb not in unseen]
    out["compound, unseen"] = list(unseen)
    return out


def score(runs: dict, truth: dict[str, set[str]], labels: list[str], constants: Constants | None
          ) -> dict[str, float]:
    tp = fp = fn = 0
    for label in labels:
        scores, cutoff = runs[label]
        value = value_of(cutoff, constants)
        matched = {p for p, s in scores.items() if value is not None and s >= value}
        positive = {p for p, names in truth.items() if label in names}
        tp, fp, fn = tp + len(matched & positive), fp + len(matched - positive), fn + len(positive - matched)
    p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9)}


def table(results: dict[str, dict]) -> str:
    lines = ["| model | family | labels | precision | recall | F1 |", "|---|---|---|---|---|---|"]
    for spec, fams in results.items():
        for name, r in fams.items():
            if not isinstance(r, dict) or "f1" not in r:
                continue
            lines.append(f"| `{spec}` | {name} | {r['labels']} | {100 * r['precision']:.1f} | "
                         f"{100 * r['recall']:.1f} | {100 * r['f1']:.1f} |")
        lines.append(f"| `{spec}` | texts that describe nothing here | {len(NOTHING)} | photos flagged: "
                     f"{fams['nothing']} | | |")
        c = fams["constants"]
        floor = "none" if c["floor"] is None else f"{c['floor']:.3f}"
        lines.append(f"| `{spec}` | constants | | alpha {c['alpha']} | guard {c['guard']}, floor {floor} | |")
        lines.append(f"| `{spec}` | unseen compounds, search mAP | | {100 * fams['unseen_search_map']:.1f} | | |")
    return "\n".join(lines)


def run_set(specs: list[str], n: int, seed: int, tmp: Path) -> dict[str, tuple]:
    photos = generate(tmp / f"photos-{seed}", n=n, seed=seed)
    return {spec: searches(spec, photos, tmp / f"home-{seed}-{i}") for i, spec in enumerate(specs)}


def report(sets: dict[str, tuple], unseen: list[str], constants: Constants | None) -> dict[str, dict]:
    results = {}
    for spec, (runs, truth) in sets.items():
        fams = {name: {**score(runs, truth, labels, constants), "labels": len(labels)}
                for name, labels in groups(unseen).items()}
        fams["nothing"] = sum(
            1 for text in NOTHING for s in runs[text][0].values()
            if (v := value_of(runs[text][1], constants)) is not None and s >= v)
        fams["constants"] = vars(runs[NOTHING[0]][1].constants)
        fams["unseen_search_map"] = search_map(runs, truth, unseen)
        results[spec] = fams
    return results


def search_map(runs: dict, truth: dict[str, set[str]], labels: list[str]) -> float:
    """mAP of the labels' rankings over the whole collection (photos a search did not return rank last)."""
    paths = sorted(truth)
    scores = np.array([[runs[label][0].get(p, -np.inf) for label in labels] for p in paths])
    positives = np.array([[1 if label in truth[p] else -1 for label in labels] for p in paths])
    return float(mean_average_precision(np.nan_to_num(scores, neginf=-1e9), positives))


def built_seeds(results: dict[str, dict]) -> str:
    """Mean and standard deviation of each figure over the models built by ``tagscope synth mkt``."""
    specs = [s for s in results if (load_meta(s).get("build") or {}).get("train_n")]
    if len(specs) < 2:
        return ""
    seeds = [load_meta(s)["build"]["seed"] for s in specs]
    lines = [f"`tagscope synth mkt` bundles, seeds {seeds}: mean ± sd over seeds",
             "| family | precision | recall | F1 |", "|---|---|---|---|"]
    first = results[specs[0]]
    for name in [k for k, v in first.items() if isinstance(v, dict) and "f1" in v]:
        cells = []
        for key in ("precision", "recall", "f1"):
            values = [100 * results[s][name][key] for s in specs]
            cells.append(f"{np.mean(values):.1f} ± {np.std(values):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    flagged = [results[s]["nothing"] for s in specs]
    maps = [100 * results[s]["unseen_search_map"] for s in specs]
    lines.append(f"| texts that describe nothing here | photos flagged: {flagged} | | |")
    lines.append(f"| unseen compounds, search mAP | {np.mean(maps):.1f} ± {np.std(maps):.1f} | | |")
    return "\n".join(lines)


def load_meta(spec: str) -> dict:
    from mkt.bundle import load_bundle
    from mkt.factory import bundle_path

    path = bundle_path(spec)
    return load_bundle(path).meta if path is not None else {}


def fitted(spec: str, tmp: Path, n: int) -> str:
    """An MKT bundle spec -> a copy of the bundle with constants fitted on the validation set."""
    if not spec.startswith("mkt:"):
        return spec
    copy = tmp / f"fitted-{Path(spec[4:]).name}"
    shutil.copyfile(spec[4:], copy)
    photos = tmp / f"photos-{EVAL_SEED + 1}"
    if not (photos / "labels.jsonl").exists():
        generate(photos, n=n, seed=EVAL_SEED + 1)
    print(f"fitted {spec}: {fit_bundle(str(copy), str(photos))}")
    return f"mkt:{copy}"


def grid(validation: dict[str, tuple], unseen: list[str]) -> None:
    for alpha in (0.5, 0.56, 0.6, 0.65, 0.7, 0.72, 0.75, 0.8):
        for guard in (-1.0, -0.1, 0.0):
            r = report(validation, unseen, Constants(alpha, guard, None))
            cells = " ".join(f"{name[:12]}={100 * v['f1']:.0f}" for fams in r.values()
                             for name, v in fams.items() if isinstance(v, dict) and "f1" in v)
            nothing = [f["nothing"] for f in r.values()]
            print(f"validation alpha={alpha} guard={guard}: {cells} nothing={nothing}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relevance", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, help="model spec (repeat)")
    p.add_argument("--n", type=int, default=1000, help="held-out images per set")
    p.add_argument("--grid", action="store_true", help="also print F1 on the validation set for other constants")
    p.add_argument("--fit", action="store_true", help="fit each MKT bundle's constants on the validation set first")
    args = p.parse_args(argv)
    unseen = synthetic_split(20, seed=0).unseen
    with tempfile.TemporaryDirectory(prefix="tagscope-relevance-") as tmp:
        specs = [fitted(spec, Path(tmp), args.n) if args.fit else spec for spec in args.model]
        if args.grid:
            grid(run_set(specs, args.n, EVAL_SEED + 1, Path(tmp)), unseen)
        test = run_set(specs, args.n, EVAL_SEED, Path(tmp))
        results = report(test, unseen, None)
    print(f"test set (seed {EVAL_SEED}, {args.n} photos), each model's constants")
    print(table(results))
    print(built_seeds(results))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
