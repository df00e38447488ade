"""Near-duplicate precision and recall on generated variants, and the threshold of each bundled model.

    python -m bench.duplicates [--families 150] [--distinct 300] [--model synthetic-mkt --model synthetic]

1. :func:`bench.variants.write_variants`: ``--families`` bases, each with a resized, a
   re-encoded (JPEG quality 25), a cropped (88%, off centre) copy and a burst shot; one photo with
   exactly the family's labels in another layout each (the hard negatives), one with one object
   changed (reported apart), and ``--distinct`` other photos;
2. each model tags the folder through the real pipeline (``run_job``: decode, embed, store);
3. from the STORED embeddings, for each threshold: the pairs of photos that are near-duplicates
   as pairs (cosine >= threshold) and as Tagscope groups them (:func:`indexer.search.near_groups.group_rows`,
   complete linkage), against the truth (same family): precision and recall over all pairs of the
   collection, recall per variant kind (base-variant pairs), false pairs per kind of negative;
4. the threshold with the best grouped recall at a grouped precision of at least ``--precision``
   (0.95): the one to write into ``indexer.search.similar.CALIBRATED``.

Prints a table per model and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np

THRESHOLDS = [round(t, 3) for t in np.arange(0.80, 0.9951, 0.005)]


def pair_set(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for g in groups for a, b in combinations(g, 2)}


def evaluate(predicted: set[tuple[int, int]], family: list, kind: list[str], counted: np.ndarray) -> dict:
    """Pairwise precision / recall of ``predicted`` pairs of rows among the ``counted`` rows; recall
    per variant kind over (base, variant) pairs; false pairs per negative kind."""
    rows = [r for r in range(len(family)) if counted[r]]
    truth = {(a, b) for a, b in combinations(rows, 2) if family[a] is not None and family[a] == family[b]}
    pred = {p for p in predicted if counted[p[0]] and counted[p[1]]}
    tp = len(pred & truth)
    out = {"pairs": len(pred), "true_pairs": len(truth), "precision": tp / len(pred) if pred else 1.0,
           "recall": tp / len(truth) if truth else 1.0, "recall_by_kind": {}, "false_by_kind": {}}
    base_of = {family[r]: r for r in rows if kind[r] == "base"}
    for k in sorted({kind[r] for r in rows if family[r] is not None and kind[r] != "base"}):
        wanted = [(min(base_of[family[r]], r), max(base_of[family[r]], r)) for r in rows
                  if kind[r] == k and family[r] in base_of]
        out["recall_by_kind"][k] = sum(p in pred for p in wanted) / len(wanted) if wanted else None
    for p in pred - truth:
        for r in p:
            if family[r] is None:
                out["false_by_kind"][kind[r]] = out["false_by_kind"].get(kind[r], 0) + 1
    return out


def bench_model(spec: str, photos: Path, manifest: dict, work: Path, target: float) -> dict:
    from sqlalchemy import select

    from core.schema import Image
    from core.settings import load_settings
    from indexer import store
    from indexer.search.duplicates import served_version
    from indexer.search.near_groups import group_rows
    from migrations import get_database
    from tagger.jobs.run import run_job

    settings = load_settings(environ={}, home=str(work / f"home-{spec}"), model=spec, device="cpu",
                             loader_workers=0)
    t0 = time.perf_counter()
    run_job(settings, [str(photos)])
    tag_s = time.perf_counter() - t0
    db = get_database(settings.db_url)
    version, _ = served_version(db)
    ids, vectors = [], []
    for chunk_ids, chunk_vectors, _ in store.scan(db, version.id, version.dim):
        ids.append(chunk_ids)
        vectors.append(chunk_vectors)
    ids, vectors = np.concatenate(ids), np.concatenate(vectors)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with db.session() as s:
        path_of = dict(s.execute(select(Image.id, Image.path)).all())
    names = [Path(path_of[int(i)]).name for i in ids]
    family = [manifest[n]["family"] for n in names]
    kind = [manifest[n]["kind"] for n in names]
    assert len(ids) == len(manifest), f"{len(ids)} tagged of {len(manifest)} photos"
    main = np.asarray([k != "one-object" for k in kind])
    gram = vectors @ vectors.T
    rows = []
    t0 = time.perf_counter()
    for t in THRESHOLDS:
        a, b = np.nonzero(np.triu(gram >= t, 1))
        raw = evaluate(set(zip(a.tolist(), b.tolist())), family, kind, main)
        groups = group_rows(vectors, t)
        grouped = evaluate(pair_set(groups), family, kind, main)
        rows.append({"threshold": t, "raw": raw, "grouped": grouped, "groups": groups})
    group_s = (time.perf_counter() - t0) / len(THRESHOLDS)
    ok = [r for r in rows if r["grouped"]["precision"] >= target]
    best = max(ok, key=lambda r: (r["grouped"]["recall"], r["threshold"])) if ok else None
    one_object = None
    if best is not None and not main.all():
        # the one-object photos against their family's base (its scene with one object changed)
        base_of = {family[r]: r for r in range(len(ids)) if kind[r] == "base"}
        scene_of = {}
        for r in np.flatnonzero(~main):
            # a one-object photo carries no family; find its scene's family by the nearest base
            bases = np.asarray(list(base_of.values()))
            scene_of[int(r)] = int(bases[np.argmax(gram[r, bases])])
        joined = pair_set(best["groups"])
        one_object = {"photos": len(scene_of),
                      "grouped_with_their_scene": sum((min(r, b), max(r, b)) in joined for r, b in scene_of.items()),
                      "cosine_to_their_scene_median": float(np.median([gram[r, b] for r, b in scene_of.items()]))}
    return {"model": spec, "photos": len(ids), "tag_s": round(tag_s, 1), "group_s": round(group_s, 3),
            "rows": rows, "best": best, "one_object": one_object}


def show(result: dict, target: float) -> None:
    print(f"\n## {result['model']}: {result['photos']} photos (tagged in {result['tag_s']} s; grouping "
          f"{result['group_s'] * 1000:.0f} ms per threshold)")
    kinds = sorted(result["rows"][0]["grouped"]["recall_by_kind"])
    print("| threshold | pairs P / R | grouped P / R | " + " | ".join(f"R {k}" for k in kinds) +
          " | false pairs (same-labels / distinct) |")
    print("|---" * (4 + len(kinds)) + "|")
    for r in result["rows"]:
        raw, g = r["raw"], r["grouped"]
        mark = " **" if result["best"] is r else ""
        false = g["false_by_kind"]
        print(f"| {r['threshold']:.3f}{mark} | {raw['precision']:.3f} / {raw['recall']:.3f} | "
              f"{g['precision']:.3f} / {g['recall']:.3f} | "
              + " | ".join(f"{g['recall_by_kind'][k]:.3f}" for k in kinds)
              + f" | {false.get('same-labels', 0)} / {false.get('distinct', 0)} |")
    if result["best"] is None:
        print(f"no threshold reaches a grouped precision of {target}")
    else:
        b = result["best"]
        print(f"chosen: {b['threshold']} (grouped precision {b['grouped']['precision']:.3f}, "
              f"recall {b['grouped']['recall']:.3f})")
    if result["one_object"]:
        o = result["one_object"]
        print(f"one object changed (not in the figures above): {o['grouped_with_their_scene']} of {o['photos']} "
              f"grouped with their scene at the chosen threshold; "
              f"median cosine {o['cosine_to_their_scene_median']:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=150)
    parser.add_argument("--distinct", type=int, default=300)
    parser.add_argument("--model", action="append", help="model specs (default: synthetic-mkt, synthetic)")
    parser.add_argument("--precision", type=float, default=0.95, help="the precision the threshold must reach")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from bench.variants import write_variants

    out = []
    with tempfile.TemporaryDirectory(prefix="tagscope-dup-bench-") as tmp:
        work = Path(tmp)
        manifest = write_variants(work / "photos", args.families, args.distinct, seed=args.seed, minimal=True)
        print(f"{len(manifest)} photos: {args.families} families of a base + resized, jpeg, crop, burst; "
              f"{args.families} same-labels and {args.families} one-object photos; {args.distinct} distinct")
        for spec in args.model or ["synthetic-mkt", "synthetic"]:
            result = bench_model(spec, work / "photos", manifest, work, args.precision)
            show(result, args.precision)
            best = result["best"]
            out.append({"model": spec, "photos": result["photos"],
                        "threshold": best["threshold"] if best else None,
                        "precision": round(best["grouped"]["precision"], 4) if best else None,
                        "recall": round(best["grouped"]["recall"], 4) if best else None,
                        "recall_by_kind": {k: round(v, 4) for k, v in best["grouped"]["recall_by_kind"].items()}
                        if best else None,
                        "pairs_precision": round(best["raw"]["precision"], 4) if best else None,
                        "pairs_recall": round(best["raw"]["recall"], 4) if best else None,
                        "one_object": result["one_object"]})
    print(json.dumps({"bench": "duplicates", "families": args.families, "distinct": args.distinct,
                      "target_precision": args.precision, "models": out}))


if __name__ == "__main__":
    main()
