"""Multilingual open_clip models go through the same spec and loading path; offline, what is
missing is said in one line (no weights can be downloaded here)."""

from __future__ import annotations

import pytest

from core.errors import TagscopeError
from core.modelspec import parse_spec
from mkt.factory import create_tag_model
from tests.commands import run_cli

MULTILINGUAL = "open_clip:xlm-roberta-base-ViT-B-32:laion5b_s13b_b90k"


def test_the_spec_parses_like_any_other():
    spec = parse_spec(MULTILINGUAL)
    assert (spec.kind, spec.arch, spec.pretrained) == ("open_clip", "xlm-roberta-base-ViT-B-32", "laion5b_s13b_b90k")
    assert str(spec) == MULTILINGUAL


def test_missing_weights_fail_in_one_line(tmp_path):
    proc = run_cli("search", "ein roter Kreis", "--model", MULTILINGUAL, home=tmp_path, check=False,
                   HF_HUB_OFFLINE="1")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0], proc.stderr


def test_a_missing_text_tower_fails_in_one_line(tmp_path, monkeypatch):
    weights = tmp_path / "xlmr.bin"
    weights.write_bytes(b"not really weights")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TagscopeError) as info:
        create_tag_model(f"open_clip:xlm-roberta-base-ViT-B-32:{weights}")
    message = str(info.value)
    assert "\n" not in message and "xlm-roberta-base" in message
    assert "pip install 'tagscope[multilingual]'" in message or "not cached" in message
