"""The text tower on the real token length gives CLIP's full-context embeddings (within 1e-5)."""

from __future__ import annotations

import pytest
import torch

from mkt.text import can_trim, encode_text, text_tower, used_length

TEXTS = ["a photo of a red circle.", "cat", "a photo of a very long label with many words in it, all of them.", ""]


def _full_context_prompt(encoder, labels):
    """The prompt encoder's embeddings with the transformer on all 77 positions (the old path)."""
    from mkt import text

    real = text.can_trim
    text.can_trim = lambda tower: False
    try:
        return encoder(labels)
    finally:
        text.can_trim = real


def test_the_bundled_models_text_tower_is_exact_on_the_real_length():
    from mkt.factory import get_model

    model = get_model("synthetic", "cpu")
    tokens = model.tokenizer(TEXTS)
    assert can_trim(text_tower(model.clip)) and used_length(tokens) < tokens.shape[1]
    with torch.inference_mode():
        full, trimmed = model.clip.encode_text(tokens), encode_text(model.clip, tokens)
    assert torch.allclose(full, trimmed, atol=1e-5), (full - trimmed).abs().max()


def test_vit_b_32_text_tower_is_exact_on_the_real_length():
    import open_clip

    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()  # random weights: no download
    tokens = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    with torch.inference_mode():
        full, trimmed = clip.encode_text(tokens), encode_text(clip, tokens)
    assert torch.allclose(full, trimmed, atol=1e-5), (full - trimmed).abs().max()


def test_a_learned_prompt_is_exact_on_the_real_length():
    from mkt.factory import get_model
    from mkt.prompt import PromptEncoder

    model = get_model("synthetic", "cpu")
    encoder = PromptEncoder(model.clip, model.tokenizer, n_ctx=4, init="random")
    labels = ["red circle", "striped background", "a label of several words"]
    with torch.inference_mode():
        trimmed, full = encoder(labels), _full_context_prompt(encoder, labels)
    assert torch.allclose(full, trimmed, atol=1e-5), (full - trimmed).abs().max()


def test_a_tower_without_a_causal_mask_runs_the_full_context():
    class Tower(torch.nn.Module):
        attn_mask = None

    assert not can_trim(Tower())
    with pytest.raises(AttributeError):
        encode_text(Tower(), torch.zeros(1, 77, dtype=torch.long))  # falls back to clip.encode_text


def test_labels_encoded_in_length_sorted_batches_come_back_in_their_own_order():
    from mkt.factory import get_model

    model = get_model("synthetic", "cpu")
    labels = ["a very long label made of many different words", "red", "blue square", "x", "striped background",
              "green circle on a dotted background", "star"]
    with torch.inference_mode():
        batched = model.encode_labels(labels, batch_size=2)  # sorted by length into 4 batches
        one_by_one = torch.cat([model.encode_labels([label]) for label in labels])
    assert torch.allclose(batched, one_by_one, atol=1e-5), (batched - one_by_one).abs().max()
