"""Zero-shot tagging quality per label family of the synthetic world, for docs/synthetic-world.md.

    python -m bench.zero_shot [--model synthetic] [--n 500] [--seed 20240601]

Fresh scenes from a seed never used for training, scored with ``mkt.training.evaluate.
zero_shot_by_family`` (the model's own preprocess and prompt): mAP, chance (the mean positive
rate) and precision@10 per family, as a Markdown table, then one JSON line. Quality, not speed:
the figures do not depend on the machine.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zero_shot", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="synthetic")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    from mkt.factory import create_tag_model
    from mkt.training.evaluate import zero_shot_by_family

    model = create_tag_model(args.model, device="cpu")
    result = zero_shot_by_family(model, n=args.n, seed=args.seed)
    print(f"{args.model} (version {model.version}), {result['n']} scenes of seed {result['seed']}, "
          f"template {result['template']!r}")
    print("| Family | mAP | Chance | P@10 |\n|---|---|---|---|")
    for family, m in result["families"].items():
        print(f"| {family} | {m['map']:.3f} | {m['chance']:.3f} | {m['precision_at_10']:.3f} |")
    print(json.dumps({"model": args.model, "version": model.version, **result}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
