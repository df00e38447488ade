"""The text tower on the real token length vs the full 77-token context, in one run.

    python -m bench.text_tower [--arch ViT-B-32] [--labels 512] [--batch 256]

Encodes the first ``--labels`` labels of the default vocabulary ("a photo of a {label}.") with
random weights (no download) both ways; prints seconds, the speedup and the largest difference
between the two embeddings. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--labels", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args(argv)

    import open_clip
    import torch

    from mkt.text import encode_text
    from tagger.vocabulary import default_label_names

    clip = open_clip.create_model(args.arch, pretrained=None).eval()
    tokens = open_clip.get_tokenizer(args.arch)([f"a photo of a {n}." for n in default_label_names()[:args.labels]])
    batches = [tokens[i:i + args.batch] for i in range(0, len(tokens), args.batch)]
    with torch.inference_mode():
        t0 = time.perf_counter()
        full = torch.cat([clip.encode_text(b) for b in batches])
        t1 = time.perf_counter()
        trimmed = torch.cat([encode_text(clip, b) for b in batches])
        t2 = time.perf_counter()
    out = {"arch": args.arch, "labels": len(tokens), "full_s": round(t1 - t0, 3), "trimmed_s": round(t2 - t1, 3),
           "speedup": round((t1 - t0) / (t2 - t1), 2), "max_abs_diff": float((full - trimmed).abs().max())}
    print(f"{out['labels']} labels through {args.arch}'s text tower: full 77-token context {out['full_s']:.2f} s, "
          f"real token length {out['trimmed_s']:.2f} s ({out['speedup']:.1f}x), "
          f"max difference {out['max_abs_diff']:.1e}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
