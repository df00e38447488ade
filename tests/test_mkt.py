"""MKT: model shapes and scoring on the tiny model, the prompt encoder, and short training runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mkt.factory import create_tag_model
from mkt.prompt import PromptEncoder
from mkt.training.model import (
    MKT,
    cosine_lr,
    default_top_k,
    layer_decay_groups,
    set_trainable_blocks,
    two_stream_scores,
)

from . import ROOT
from .commands import run_cli


@pytest.fixture(scope="module")
def tiny():
    return create_tag_model("synthetic")


def test_top_k_scales_with_the_patch_count():
    assert default_top_k(196) == 16 and default_top_k(16) == 1 and default_top_k(49) == 4


def test_two_stream_shapes_and_label_axis_normalisation(tiny):
    mkt = MKT(tiny.clip, tiny.tokenizer)
    pixels = torch.randn(3, 3, 64, 64)
    g, p = mkt.image_features(pixels)
    assert g.shape == (3, 128) and p.shape == (3, 16, 128)
    labels = mkt.label_embeddings(["red circle", "blue star", "dotted background", "crimson kite"])
    s = two_stream_scores(g, p, labels, top_k=2, label_norm=True)
    s_g = two_stream_scores(g, p, labels, top_k=2, label_norm=True, global_only=True)
    assert s.shape == (3, 4) and torch.allclose(s_g.norm(dim=-1), torch.ones(3), atol=1e-5)
    # the paper's normalised score depends on which labels are scored together; the raw one does not
    alone = two_stream_scores(g, p, labels[:1], top_k=2, label_norm=False)
    assert torch.allclose(alone[:, 0], two_stream_scores(g, p, labels, top_k=2, label_norm=False)[:, 0])
    # local stream = mean of the top-k patch scores
    local = (p @ labels[0]).topk(2, dim=1).values.mean(dim=1)
    assert torch.allclose(two_stream_scores(g, p, labels[:1], 2, label_norm=False)[:, 0],
                          (g @ labels[0] + local) / 2, atol=1e-5)


def test_prompt_encoder_starts_as_the_template_and_trains_only_its_context(tiny):
    encoder = PromptEncoder(tiny.clip, tiny.tokenizer, template="There is a {label} in the scene")
    assert (encoder.n_prefix, encoder.n_suffix) == (3, 3)
    with torch.no_grad():
        fixed = tiny.clip.encode_text(tiny.tokenizer(["There is a red circle in the scene"]))
    assert torch.allclose(encoder(["red circle"]), fixed, atol=1e-5)
    tiny.clip.requires_grad_(False)
    encoder(["a label never seen in training"]).sum().backward()
    assert encoder.context.grad is not None and encoder.context.grad.abs().sum() > 0
    random_ctx = PromptEncoder(tiny.clip, tiny.tokenizer, init="random", n_ctx=5)
    assert (random_ctx.n_prefix, random_ctx.n_suffix) == (5, 0)
    assert random_ctx(["red circle", "blue star"]).shape == (2, 128)


def test_stage1_trains_the_last_blocks_with_layer_decay(tiny):
    mkt = MKT(tiny.clip, tiny.tokenizer)
    names = set_trainable_blocks(mkt.student, 2)
    assert "proj" in names and not any(n.startswith("transformer.resblocks.0.") for n in names)
    groups = layer_decay_groups(mkt.student, lr=1e-3, weight_decay=0.05, decay=0.5)
    lrs = sorted({round(g["lr"], 8) for g in groups})
    assert lrs == [2.5e-4, 5e-4, 1e-3]
    assert all(g["weight_decay"] == 0 for g in groups if all(p.ndim <= 1 for p in g["params"]))


def test_schedule_warms_up_then_decays_to_the_minimum():
    lrs = [cosine_lr(s, 100, 10, 1e-3, 1e-6) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[100] == pytest.approx(1e-6) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_training_and_inference_encode_labels_alike(tiny):
    """One label encoder (mkt.tagmodel.embed_label_texts) for the trainer and the tagger."""
    labels = ["red circle", "blue star", "a label never seen in training"]
    mkt = MKT(tiny.clip, tiny.tokenizer, template=tiny.template)
    with torch.no_grad():
        assert torch.equal(mkt.label_embeddings(labels), tiny.encode_labels(labels))
        assert torch.allclose(tiny.encode_labels(labels, batch_size=2), tiny.encode_labels(labels), atol=1e-6)
        assert tiny.encode_labels([]).shape == (0, 128)
    with pytest.raises(TypeError):
        tiny.encode_labels("red circle")


def test_cli_and_experiments_take_stage_defaults_from_one_table(tmp_path, monkeypatch):
    import mkt.training.experiments as experiments
    from mkt.training.config import STAGE_DEFAULTS, TrainConfig, build_parser, config_from_args

    assert STAGE_DEFAULTS == {1: {"epochs": 20, "warmup_epochs": 2.0}, 2: {"epochs": 4, "warmup_epochs": 0.0}}
    cli = {stage: config_from_args(build_parser().parse_args([f"stage{stage}", "--init", "synthetic", "--out", "x.pt"]))
           for stage in (1, 2)}
    for stage, cfg in cli.items():
        assert cfg == TrainConfig.for_stage(stage, init="synthetic", out="x.pt")
        assert cfg == TrainConfig(stage=stage, init="synthetic", out="x.pt")  # direct construction too
        assert {name: getattr(cfg, name) for name in STAGE_DEFAULTS[stage]} == STAGE_DEFAULTS[stage]
    assert TrainConfig.for_stage(2, init="", out="", warmup_epochs=1.0, epochs=None).warmup_epochs == 1.0

    configs: list[TrainConfig] = []
    monkeypatch.setattr(experiments, "train", configs.append)
    runner = experiments.Runner(experiments.build_parser().parse_args([]), tmp_path, "synthetic")
    runner.stage2(0, runner.stage1(0, {}))
    assert [c.stage for c in configs] == [1, 2]
    for cfg in configs:  # what the experiments do not set on purpose is the CLI's
        for name in [*STAGE_DEFAULTS[cfg.stage], "lr", "min_lr", "batch_size", "weight_decay", "template"]:
            assert getattr(cfg, name) == getattr(cli[cfg.stage], name), name


def test_training_reports_user_errors(tmp_path, capsys):
    from mkt.training.train import main

    with pytest.raises(SystemExit) as exit_:
        main(["stage1", "--init", "synthetic", "--out", str(tmp_path / "x.pt"), "--workers", "0"])
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: training needs --train")


TRAIN_ARGS = ["--train", "synthetic", "--synthetic-n", "256", "--batch-size", "32", "--augment", "none",
              "--crop-scale", "0.9", "1.0", "--workers", "0", "--log-every", "5", "--lr", "2e-3"]


def train_cli(stage: str, *args: str, home: Path) -> dict:
    out = run_cli("train", stage, *TRAIN_ARGS, *args, home=home)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short stage 1 + stage 2 on the synthetic world (seconds, tiny model)."""
    work = tmp_path_factory.mktemp("mkt-run")
    s1 = train_cli("stage1", "--init", "synthetic", "--out", str(work / "s1.pt"), "--max-steps", "40", home=work)
    s2 = train_cli("stage2", "--init", f"mkt:{work / 's1.pt'}", "--out", str(work / "s2.pt"), "--max-steps", "12",
                   "--images", str(work / "synthetic-train-0-256"), home=work)
    return work, s1, s2


@pytest.mark.training
def test_short_training_lowers_the_loss_and_writes_bundles(trained):
    work, s1, s2 = trained
    assert s1["steps"] == 40 and s1["last_loss"] < s1["first_loss"], s1
    assert s2["steps"] == 12 and (work / "s2.pt").exists()
    log = [json.loads(line) for line in (work / "s1.log.jsonl").read_text().splitlines()]
    assert {"step", "loss", "rank_loss", "distill_loss", "lr"} <= set(log[0])


@pytest.mark.training
def test_trained_bundle_tags_and_searches_through_the_tagger(trained, synthetic_photos, tmp_path):
    work, _, _ = trained
    spec = f"mkt:{work / 's2.pt'}"
    model = create_tag_model(spec)
    assert model.kind == "mkt" and model.prompt_encoder is not None and model.local_top_k >= 1
    home = tmp_path / "home"
    run_cli("tag", str(synthetic_photos), "--model", spec, home=home)
    status = json.loads(run_cli("status", "--json", home=home).stdout)
    assert status["model"]["spec"] == spec and status["index"]["size"] == status["images"]["tagged"] > 0
    results = json.loads(run_cli("search", "red thing", "--json", "-k", "5", home=home).stdout)["results"]
    assert len(results) == 5


def test_product_score_weights_the_local_stream(tiny):
    from mkt.tagmodel import ImageEmbeddings

    model = create_tag_model("synthetic")
    model.local_top_k, model.local_weight = 1, 3.0
    images = ImageEmbeddings(torch.tensor([[1.0, 0.0]]), torch.tensor([[[0.0, 1.0], [0.6, 0.8]]]))
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # global cosines (1, 0); best patch cosines (0.6, 1); (g + 3 l) / 4
    assert torch.allclose(model.score(images, labels), torch.tensor([[0.7, 0.75]]))


@pytest.mark.training
def test_trained_bundle_balances_its_two_streams(trained):
    """The fitted local weight makes both streams spread equally over training images."""
    from mkt.annotations import read_annotations
    from mkt.synthetic import synthetic_split
    from mkt.training.data import LabelledImages

    work, _, _ = trained
    model = create_tag_model(f"mkt:{work / 's1.pt'}")
    assert model.local_weight > 1.0  # trained patch cosines spread less than the global one
    root = work / "synthetic-train-0-256"
    seen = synthetic_split(20, seed=0).seen
    examples = [e for e in read_annotations(root / "labels.jsonl") if e.labels & set(seen)]
    pixels = torch.stack([LabelledImages(root, examples, seen, model.preprocess)[i][0] for i in range(len(examples))])
    with torch.inference_mode():
        emb, labels = model.encode_images(pixels), model.encode_labels(seen)
        global_ = emb.global_ @ labels.T
        local = torch.einsum("bpd,ld->blp", emb.patches, labels).topk(model.local_top_k, dim=-1).values.mean(-1)
    assert global_.std().item() == pytest.approx(model.local_weight * local.std().item(), rel=0.02)


@pytest.mark.training
def test_training_resumes_from_its_checkpoint(trained, tmp_path):
    work, _, _ = trained
    ckpt = work / "s1.ckpt"
    assert ckpt.exists()
    out = train_cli("stage1", "--init", "synthetic", "--out", str(tmp_path / "resumed.pt"), "--max-steps", "45",
                    "--resume", str(ckpt), "--images", str(work / "synthetic-train-0-256"), home=tmp_path)
    assert out["steps"] == 45  # continued at step 40, not from 0


@pytest.mark.training
def test_eval_reports_zsl_and_gzsl(trained, tmp_path):
    work, _, _ = trained
    out = run_cli("eval", "--model", f"mkt:{work / 's2.pt'}", "--data", "synthetic", "--synthetic-n", "150",
                  "--json", home=tmp_path)
    result = json.loads(out.stdout)
    assert set(result["zsl"]) == {"map", "f1@3", "p@3", "r@3", "f1@5", "p@5", "r@5"}
    assert result["unseen"] == 20 and result["seen"] == 106
    assert 0 < result["zsl"]["map"] <= 1 and 0 < result["gzsl"]["map"] <= 1


@pytest.mark.training
@pytest.mark.slow
def test_ddp_with_torchrun_needs_no_code_change(tmp_path):
    """Two processes on the CPU (gloo): the same entry point, launched by torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "mkt.training.train", "stage1", "--init", "synthetic",
                           "--out", str(tmp_path / "ddp.pt"),
                           "--max-steps", "4", *TRAIN_ARGS, "--synthetic-n", "128", "--batch-size", "16",
                           "--images", str(tmp_path / "data")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4 and (tmp_path / "ddp.pt").exists()


@pytest.mark.training
@pytest.mark.slow
def test_results_table_is_regenerated_by_its_command(tmp_path):
    from mkt.training.experiments import main as experiments_main

    out, work = tmp_path / "results.md", tmp_path / "work"
    small = ["--work", str(work), "--train-n", "96", "--eval-n", "48", "--steps1", "3", "--steps2", "2",
             "--batch-size", "16", "--workers", "0", "--base-steps", "3"]
    assert experiments_main(["--out", str(out), "--seeds", "0", "1", *small]) == 0
    text = out.read_text()
    for row in ("zero-shot CLIP", "zero-shot CLIP, paper's two-stream score", "MKT stage 1 (= no prompt tuning)",
                "MKT stage 1+2", "MKT stage 1, paper's distillation weight 1", "no distillation (1+2)",
                "global stream only (1+2)"):
        assert f"| {row} |" in text
    assert "ZSL mAP" in text and "±" in text and "python -m mkt.training.experiments" in text
    assert (work / "clip-web-3.pt").is_file()  # the web-caption CLIP it started from
    raw = tmp_path / "bench-results" / f"{out.stem}.json"  # every figure's raw file lives in bench-results/
    assert f"[bench-results/{out.stem}.json](bench-results/{out.stem}.json)" in text
    summary = json.loads(raw.read_text())
    assert len(summary["results"]["MKT stage 1+2"]) == 2 and summary["distill_weight"] == 0.03
    assert 0 <= summary["results"]["MKT stage 1+2"][0]["product"]["zsl_map"] <= 1

    chosen = tmp_path / "distill.md"
    assert experiments_main(["--out", str(chosen), "--seeds", "0", "--select-distill", "1", "0.1", *small]) == 0
    text = chosen.read_text()
    assert "validation" in text and "| stage 1, distillation weight 0.1 |" in text
    assert (work / "validation" / "labels.jsonl").is_file()
