"""Tags as decisions, measured where people meet them: the keywords the default XMP export writes.

    python -m bench.tags [--n 400] [--seeds 0 20240601] [--model synthetic-mkt --model synthetic]
        [--direct] [--fit-k]

For each held-out world (a synthetic collection of ``--n`` photos per seed; never a seed the
shipped bundles were built or calibrated with) and each model, end to end as a user would:
``tagscope tag FOLDER --model SPEC`` into a fresh home, ``tagscope export xmp FOLDER`` with its
defaults (the matching tags only), then the sidecars read back (:func:`tagger.exchange.xmp.read_keywords`,
and exiftool when it is on PATH: both must read the same keywords) and compared with the world's
labels.jsonl. Figures: keyword precision, recall and F1 (micro, over photos and labels), overall
and on the labels held out of MKT's training (the ``unseen`` family of ``synthetic-mkt``; the
zero-shot model saw none of its labels in a tagging sense), keywords per photo against true ones,
and the expected calibration error (ECE) of the stored tags' confidence (each stored tag's
confidence from its rule, against whether the label is in the photo; 10 bins), with the
reliability table.

``--direct`` computes the same figures without the command line: the model's stored score
(PyTorch, :func:`mkt.training.evaluate.predict`), each photo's ``top_n`` best kept, each label's
rule as the tagger computes it (:func:`mkt.tag_calibration.bundle_rule`, else
:func:`~mkt.tag_calibration.collection_rule` on the label's scores over the world). ``--fit-k``
also prints, on the validation set (seed ``EVAL_SEED + 1``, 1,000 photos), the collection slope
``k`` fitted for each model without a bundle calibration (how :data:`mkt.tag_calibration.COLLECTION_SLOPE`
was chosen).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mkt import tag_calibration as tc
from mkt.synthetic import DEMO_SEED, EVAL_SEED, generate
from mkt.synthetic.scenes import label_families

MODELS = ("synthetic-mkt", "synthetic")
SEEDS = (DEMO_SEED, EVAL_SEED)  # the demo's world and the test world: no bundle was built or calibrated on them
BUILD_SEEDS = {EVAL_SEED + 1: "the validation set the bundles are calibrated on"}
TOP_N = 20  # core.settings' default top_n: tags stored per photo


def check_seed(seed: int) -> None:
    """Refuse a seed a shipped bundle saw: its validation set, or its training scenes (1000 + seed)."""
    if seed in BUILD_SEEDS:
        raise SystemExit(f"seed {seed} is {BUILD_SEEDS[seed]}: choose a held-out seed")
    if 1000 <= seed < 2000:
        raise SystemExit(f"seed {seed} is in the range MKT's training scenes use (1000 + build seed): choose another")


def truth_of(folder: Path) -> dict[str, set[str]]:
    """file name -> its labels (lower case), from labels.jsonl."""
    out = {}
    for line in (folder / "labels.jsonl").read_text().splitlines():
        row = json.loads(line)
        out[row["file"]] = {x.lower() for x in row["labels"]}
    return out


def unseen_labels() -> set[str]:
    from mkt.bundle import load_bundle
    from mkt.factory import SYNTHETIC_MKT_BUNDLE

    return {x.lower() for x in (load_bundle(SYNTHETIC_MKT_BUNDLE).label_families or {}).get("unseen", ())}


# -- end to end ---------------------------------------------------------------------------------
def tagscope(home: Path, *args: str) -> str:
    """One ``tagscope`` command in a new interpreter on ``home`` (the suite's environment rules)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGSCOPE_") or k == "TAGSCOPE_RUNTIME_CACHE"}
    env.update(TAGSCOPE_HOME=str(home), HF_HUB_OFFLINE="1", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-m", "tagscope", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tagscope {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def exiftool_keywords(folder: Path) -> dict[str, set[str]] | None:
    """photo file name -> the dc:subject exiftool reads in its sidecar; None without exiftool."""
    if not shutil.which("exiftool"):
        return None
    done = subprocess.run(["exiftool", "-j", "-q", "-XMP-dc:Subject", "-ext", "xmp", str(folder)],
                          capture_output=True, text=True)
    out = {}
    for row in json.loads(done.stdout or "[]"):
        subject = row.get("Subject", [])
        words = subject if isinstance(subject, list) else [subject]
        out[Path(row["SourceFile"]).name.removesuffix(".xmp")] = {" ".join(str(w).lower().split()) for w in words}
    return out


def stored_decisions(home: Path) -> tuple[list[tuple[str, str, float, bool]], str]:
    """Every stored tag of the collection's version as (file name, label, confidence, match) by the
    rules the product stored (:mod:`core.decisions`), and the version id."""
    from sqlalchemy import select

    from core.decisions import UNDECIDED, rules
    from core.schema import Image, Label, Tag, collection_model_version
    from core.settings import load_settings
    from migrations import get_database

    settings = load_settings(environ={}, home=str(home))
    with get_database(settings.db_url).session() as s:
        version = collection_model_version(s)
        by_label = rules(s, version.id)
        rows = s.execute(select(Image.path, Label.id, Label.name, Tag.score).join(Tag, Tag.image_id == Image.id)
                         .join(Label, Label.id == Tag.label_id).where(Tag.model_version_id == version.id)).all()
        out = [(Path(path).name, name.lower(), by_label.get(lid, UNDECIDED).confidence(score),
                by_label.get(lid, UNDECIDED).matches(score)) for path, lid, name, score in rows]
        return out, version.version


def end_to_end(spec: str, folder: Path, home: Path) -> dict:
    """Tag, export and read back one world with one model; the keywords and the stored decisions."""
    for sidecar in folder.glob("*.xmp"):
        sidecar.unlink()  # each model exports into clean sidecars
    tagscope(home, "tag", str(folder), "--model", spec)
    tagscope(home, "export", "xmp", str(folder))
    from tagger.exchange.xmp import read_keywords

    photos = sorted(truth_of(folder))
    keywords = {name: {" ".join(k.lower().split()) for k in read_keywords(folder / name)} for name in photos}
    tags, version = stored_decisions(home)
    by_exiftool = exiftool_keywords(folder)
    agree = None if by_exiftool is None else sum(by_exiftool.get(n, set()) == keywords[n] for n in photos)
    matches: dict[str, set[str]] = {n: set() for n in photos}
    for name, label, _, match in tags:
        if match:
            matches.setdefault(name, set()).add(label)
    return {"keywords": keywords, "confidence": [(name, label, c) for name, label, c, _ in tags],
            "version": version, "exiftool_agrees": agree,
            "xmp_equals_stored_matches": sum(matches[n] == keywords[n] for n in photos)}


# -- direct ---------------------------------------------------------------------------------------
def world_scores(spec: str, folder: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray, object]:
    """The model's stored score [N, L] of every photo and label (PyTorch), each photo's best score on
    a background text [N], and the model."""
    import torch

    from mkt.annotations import read_annotations
    from mkt.calibration import BACKGROUND_TEXTS
    from mkt.factory import get_model
    from mkt.training.evaluate import predict

    model = get_model(spec)
    examples = read_annotations(folder / "labels.jsonl")
    with torch.inference_mode():
        scores, _ = predict(model, folder, examples, labels, score="product")
        background, _ = predict(model, folder, examples, list(BACKGROUND_TEXTS), score="product")
    return scores, background.max(axis=1), model


def direct_rules(model, scores: np.ndarray, background: np.ndarray, labels: list[str]) -> list:
    """Each label's rule as the tagger computes it: the bundle's, else from the collection's scores."""
    from mkt.calibration import statistics

    k = tc.collection_slope(model.tag_calibration)
    out = []
    for j, label in enumerate(labels):
        rule = tc.bundle_rule(model.tag_calibration, label)
        out.append(rule or tc.collection_rule(statistics(scores[:, j], background), model.relevance, k))
    return out


def direct(spec: str, folder: Path) -> dict:
    """The figures' inputs computed in Python: keywords = stored tags whose rule matches."""
    labels = [x for family in label_families().values() for x in family]
    scores, background, model = world_scores(spec, folder, labels)
    rules = direct_rules(model, scores, background, labels)
    keep = tc.stored(scores, TOP_N)
    photos = [json.loads(line)["file"] for line in (folder / "labels.jsonl").read_text().splitlines()]
    keywords = {name: {labels[j].lower() for j in np.flatnonzero(keep[i]) if rules[j].matches(float(scores[i, j]))}
                for i, name in enumerate(photos)}
    confidence = [(name, labels[j].lower(), rules[j].confidence(float(scores[i, j])))
                  for i, name in enumerate(photos) for j in np.flatnonzero(keep[i])]
    sources = sorted({r.source for r in rules})
    every = {name: {labels[j].lower() for j in np.flatnonzero(keep[i])} for i, name in enumerate(photos)}
    return {"keywords": keywords, "confidence": confidence, "version": model.version + " (PyTorch)",
            "sources": sources, "every_stored_tag": every}


# -- figures --------------------------------------------------------------------------------------
def figures(keywords: dict[str, set[str]], truth: dict[str, set[str]], confidence: list, unseen: set[str]) -> dict:
    """Keyword precision/recall/F1 overall and on ``unseen`` labels, keywords per photo, ECE."""
    def counts(only: set[str] | None) -> dict:
        tp = fp = fn = 0
        for name, true in truth.items():
            got = keywords.get(name, set())
            if only is not None:
                got, true = got & only, true & only
            tp, fp, fn = tp + len(got & true), fp + len(got - true), fn + len(true - got)
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-12), 4)}

    c = np.array([x[2] for x in confidence])
    y = np.array([x[1] in truth.get(x[0], set()) for x in confidence])
    return {"photos": len(truth), "all": counts(None), "unseen": counts(unseen),
            "keywords_per_photo": round(float(np.mean([len(keywords.get(n, ())) for n in truth])), 2),
            "true_per_photo": round(float(np.mean([len(t) for t in truth.values()])), 2),
            "ece": round(tc.expected_calibration_error(c, y), 4), "reliability": tc.reliability(c, y)}


def merged(parts: list[dict]) -> dict:
    """One world's results after another as one collection (file names made unique by world)."""
    out: dict = {"keywords": {}, "confidence": [], "truth": {}}
    for i, part in enumerate(parts):
        out["keywords"].update({f"{i}/{k}": v for k, v in part["keywords"].items()})
        out["truth"].update({f"{i}/{k}": v for k, v in part["truth"].items()})
        out["confidence"] += [(f"{i}/{n}", label, c) for n, label, c in part["confidence"]]
    return out


def row(spec: str, world: str, f: dict) -> str:
    a, u = f["all"], f["unseen"]
    return (f"| {spec} | {world} | {f['photos']} | {a['precision']:.3f} | {a['recall']:.3f} | {a['f1']:.3f} | "
            f"{u['precision']:.3f} | {u['recall']:.3f} | {u['f1']:.3f} | {f['keywords_per_photo']:.2f} / "
            f"{f['true_per_photo']:.2f} | {'-' if f.get('ece') is None else format(f['ece'], '.4f')} |")


def fit_k(specs: list[str], tmp: Path) -> None:
    """Print each model's collection slope fitted on the validation set (models without a bundle
    calibration), and the stored calibration's own validation figures (models with one)."""
    from mkt.factory import get_model

    folder = tmp / "validation"
    generate(folder, n=1000, seed=EVAL_SEED + 1)
    labels = [x for family in label_families().values() for x in family]
    truth = truth_of(folder)
    photos = [json.loads(line)["file"] for line in (folder / "labels.jsonl").read_text().splitlines()]
    y = np.array([[x.lower() in truth[p] for x in labels] for p in photos])
    for spec in specs:
        cal = get_model(spec).tag_calibration
        if cal is not None:
            d = cal["diagnostics"]
            positives = [e["positives"] for e in cal["labels"].values()]
            print(f"{spec}: bundle calibration fitted on {cal['fitted_on']} ({cal['images']} photos): "
                  f"{len(positives)} labels with a rule of their own (positives: median {np.median(positives):g}, "
                  f"min {min(positives)}), prior {cal['prior']:g} (cross-validated F1 by prior: "
                  f"{d['cross_validated_by_prior']}), cross-validated {d['cross_validated']}, ECE {d['ece']}, "
                  f"collection slope {cal['collection_slope']}, unseen labels get the {cal['unseen_rule']} "
                  f"rule (pseudo-unseen {d['pseudo_unseen']})")
            continue
        scores, background, model = world_scores(spec, folder, labels)
        k = tc.fit_collection_slope(scores, y, background, model.relevance, TOP_N)
        print(f"{spec}: no bundle calibration; collection slope k fitted on the validation set "
              f"(seed {EVAL_SEED + 1}, 1000 photos): {k:.2f} (mkt.tag_calibration.COLLECTION_SLOPE = "
              f"{tc.COLLECTION_SLOPE})")


HEADER = ("| model | world (seed) | photos | precision | recall | F1 | unseen precision | unseen recall | "
          "unseen F1 | keywords / true per photo | ECE |\n|---|---|---|---|---|---|---|---|---|---|---|")


def run_model(spec: str, worlds: dict[int, Path], tmp: Path, direct_mode: bool, unseen: set[str]) -> dict:
    parts = []
    for seed, folder in worlds.items():
        result = direct(spec, folder) if direct_mode else end_to_end(spec, folder, tmp / f"home-{spec}-{seed}")
        result["truth"] = truth_of(folder)
        result["figures"] = figures(result["keywords"], result["truth"], result["confidence"], unseen)
        print(row(spec, str(seed), result["figures"]), flush=True)
        parts.append(result)
    both = merged(parts)
    summary = figures(both["keywords"], both["truth"], both["confidence"], unseen)
    print(row(spec, "all", summary), flush=True)
    if direct_mode:  # what the export wrote before tags were decided: every stored tag
        every = merged([{**p, "keywords": p["every_stored_tag"]} for p in parts])
        before = figures(every["keywords"], every["truth"], every["confidence"], unseen)
        print(row(f"{spec}, every stored tag (top {TOP_N})", "all", {**before, "ece": None}), flush=True)
    return {"summary": summary, "worlds": {str(s): {k: v for k, v in p.items()
                                                    if k in ("figures", "version", "exiftool_agrees",
                                                             "xmp_equals_stored_matches", "sources")}
                                                for s, p in zip(worlds, parts)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tags", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=400, help="photos per world")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="held-out worlds' seeds")
    p.add_argument("--model", action="append", help=f"model spec (repeatable; default: {', '.join(MODELS)})")
    p.add_argument("--direct", action="store_true", help="scores and rules in Python, no command line")
    p.add_argument("--fit-k", action="store_true", help="also fit the collection slope on the validation set")
    args = p.parse_args(argv)
    for seed in args.seeds:
        check_seed(seed)
    specs, unseen = args.model or list(MODELS), unseen_labels()
    print(f"{'direct (PyTorch scores, rules in Python)' if args.direct else 'end to end (tagscope tag, export xmp)'}"
          f"; worlds {args.seeds}, {args.n} photos each; unseen = the {len(unseen)} labels held out of MKT's training")
    with tempfile.TemporaryDirectory(prefix="bench-tags-") as name:
        tmp = Path(name)
        if args.fit_k:
            fit_k(specs, tmp)
        worlds = {seed: generate(tmp / f"world-{seed}", n=args.n, seed=seed) for seed in args.seeds}
        print(HEADER)
        results = {spec: run_model(spec, worlds, tmp, args.direct, unseen) for spec in specs}
    for spec, result in results.items():
        print(f"\n{spec}: reliability of the stored tags' confidence (all worlds)")
        for b in result["summary"]["reliability"]:
            print(f"  {b['bin']}: {b['n']} tags, mean confidence {b['confidence']:.3f}, share true {b['true']:.3f}")
        for seed, w in result["worlds"].items():
            extra = {k: w[k] for k in ("version", "exiftool_agrees", "xmp_equals_stored_matches", "sources") if k in w}
            print(f"  world {seed}: {extra}")
    print(json.dumps({spec: {k: v for k, v in r["summary"].items() if k != "reliability"}
                      for spec, r in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
