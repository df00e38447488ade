"""Commands for model makers: the synthetic world, MKT training and evaluation, data sets."""

from __future__ import annotations

import json
import sys
import time

import click

from core.errors import TagscopeError
from tagscope.common import fail_cleanly


@click.group()
def synth() -> None:
    """The synthetic world: generated images for demos, tests and benchmarks."""


@synth.command("generate")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", type=int, default=500, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True)
@fail_cleanly
def synth_generate(out: str, n: int, seed: int) -> None:
    """Write N images and labels.jsonl to OUT."""
    from mkt.synthetic import generate

    if n < 1:
        raise TagscopeError("--n must be at least 1")
    t0 = time.time()
    generate(out, n=n, seed=seed)
    click.echo(f"wrote {n} images and labels.jsonl to {out} in {time.time() - t0:.1f}s")


@synth.command("pretrain")
@click.option("--out", type=click.Path(dir_okay=False), default="mkt/assets/synthetic.pt", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, help="Training steps (default: the shipped checkpoint's).")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@fail_cleanly
def synth_pretrain(out: str, seed: int, steps: int | None, batch_size: int | None, lr: float | None) -> None:
    """Pretrain the tiny CLIP contrastively on the synthetic world (CPU, minutes)."""
    from mkt.training.pretrain import PretrainConfig, pretrain

    kwargs = {k: v for k, v in {"steps": steps, "batch_size": batch_size, "lr": lr}.items() if v is not None}
    result = pretrain(PretrainConfig(out, seed=seed, **kwargs))
    click.echo(json.dumps(result, indent=1, default=str))


@synth.command("mkt")
@click.option("--out", type=click.Path(dir_okay=False), default="mkt/assets/synthetic-mkt.pt", show_default=True)
@click.option("--work", type=click.Path(file_okay=False), default="runs/synthetic-mkt", show_default=True,
              help="Training images, stage 1 and the validation set.")
@click.option("--seed", type=int, default=0, show_default=True)
@fail_cleanly
def synth_mkt(out: str, work: str, seed: int) -> None:
    """Train the demo's MKT model (`synthetic-mkt`) from the bundled CLIP: stages 1 and 2 on the
    world's seen labels, relevance constants and suggested queries fitted on a validation set."""
    import logging
    import shlex
    from pathlib import Path

    from mkt.training.demo_model import build

    logging.getLogger("mkt.training.train").setLevel(logging.INFO)
    command = shlex.join(["tagscope", "synth", "mkt", "--out", out, "--work", work, "--seed", str(seed)])
    click.echo(json.dumps(build(Path(out), Path(work), seed, command), indent=1))


@click.group()
def train() -> None:
    """Train MKT: `stage1` (image side) then `stage2` (prompt). `tagscope train stage1 -h` for options;
    `torchrun --nproc_per_node=N -m mkt.training.train stage1 ...` for several GPUs."""


@train.command("stage1", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_stage1(args: tuple[str, ...]) -> None:
    """Stage 1: fine-tune the image tower (ranking + distillation). Options: -h."""
    from mkt.training.train import main as train_main

    sys.exit(train_main(["stage1", *args]))


@train.command("stage2", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_stage2(args: tuple[str, ...]) -> None:
    """Stage 2: prompt tuning with the image side frozen. Options: -h."""
    from mkt.training.train import main as train_main

    sys.exit(train_main(["stage2", *args]))


@click.command("eval", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate_cmd(args: tuple[str, ...]) -> None:
    """ZSL/GZSL mAP and F1@K of a model on a labelled set. Options: -h."""
    from mkt.training.evaluate import main as eval_main

    sys.exit(eval_main(list(args)))


@click.group()
def data() -> None:
    """Data sets for training and evaluation."""


@data.command("nus-wide")
@click.option("--biam-features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with nus_wide_train.h5 and nus_wide_test.h5 (BiAM release).")
@click.option("--biam-names", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with img_names.pkl and test_img_names.pkl.")
@click.option("--taglist", required=True, type=click.Path(exists=True, dir_okay=False), help="TagList1k.txt")
@click.option("--concepts", required=True, type=click.Path(exists=True, dir_okay=False), help="Concepts81.txt")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@fail_cleanly
def data_nus_wide(biam_features: str, biam_names: str, taglist: str, concepts: str, out: str) -> None:
    """Convert BiAM's NUS-WIDE annotations to train.jsonl / test.jsonl / seen.txt / unseen.txt."""
    from mkt.training.data import convert_biam

    counts = convert_biam(biam_features, biam_names, taglist, concepts, out)
    click.echo(f"wrote {counts['train']} training and {counts['test']} test images to {out}")
