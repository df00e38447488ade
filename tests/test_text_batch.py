"""Concurrent query texts share the text tower (indexer.search.text_batch): the same vectors as one
text at a time, fewer tower calls than callers, errors to every caller of a batch. The real bundled
model encodes; a gate held by the test makes the first call wait until the others have queued, so
what forms a batch does not depend on timing. Bounded in time; speed belongs in bench.web_load."""

from __future__ import annotations

import threading

import pytest
import torch

from core.settings import Settings
from indexer.search.searcher import Searcher
from indexer.search.text_batch import TextBatcher, encode_queries
from mkt.factory import get_model

from .waiting import wait_until

TEXTS = ["cat", "red circle", "a small striped wooden boat on a very bright sunny morning", "blue star",
         "dotted lamp", "old square house with a garden", "tiny glass cup", "bird"]
TIMEOUT = 60


@pytest.fixture(scope="module")
def model():
    return get_model("synthetic", "cpu")


class Gated:
    """The real encoder; each call records (owner, texts) and waits at ``gate`` until the test opens
    it; a call holding ``fail_on`` raises once it passes the gate."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[object, list[str]]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, owner, texts):
        self.calls.append((owner, list(texts)))
        self.entered.set()
        assert self.gate.wait(TIMEOUT)
        if self.fail_on in texts:
            raise ValueError(f"the tower failed on {self.fail_on!r}")
        return encode_queries(owner if not isinstance(owner, tuple) else owner[1], texts)


def ask(batcher: TextBatcher, owner, texts: list[str]) -> tuple[dict, list[threading.Thread]]:
    """Threads asking ``batcher`` for each of ``texts``; the dict gets each text's row or exception."""
    out: dict = {}

    def one(n: int, text: str) -> None:
        try:
            out[n] = batcher.embed(owner, text)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[n] = exc

    threads = [threading.Thread(target=one, args=(n, t), daemon=True) for n, t in enumerate(texts)]
    for t in threads:
        t.start()
    return out, threads


def first_then_queued(batcher: TextBatcher, gated: Gated, owner, first: str, rest: list[str],
                      rest_owner=None) -> tuple[dict, dict]:
    """``first`` enters the encoder and waits at the gate; ``rest`` queue behind it; then the gate opens."""
    head, head_threads = ask(batcher, owner, [first])
    assert gated.entered.wait(TIMEOUT)
    tail, tail_threads = ask(batcher, owner if rest_owner is None else rest_owner, rest)
    wait_until(lambda: batcher.queued == len(rest), timeout=TIMEOUT, every=0.01, what="all texts queued")
    gated.gate.set()
    for t in head_threads + tail_threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    return head, tail


def one_at_a_time(model, text: str) -> torch.Tensor:
    return encode_queries(model, [text])


def test_concurrent_texts_share_tower_calls_and_get_the_vectors_of_one_at_a_time(model):
    gated = Gated()
    batcher = TextBatcher(gated)
    rest = TEXTS[1:] + [TEXTS[2]]  # two callers asking the same new text at once
    head, tail = first_then_queued(batcher, gated, model, TEXTS[0], rest)
    assert batcher.calls == 2 < len(rest) + 1  # the first alone, all the others in one call
    assert [sorted(texts) for _, texts in gated.calls] == [[TEXTS[0]], sorted(TEXTS[1:])]  # the same text once
    for text, row in [(TEXTS[0], head[0])] + [(t, tail[n]) for n, t in enumerate(rest)]:
        assert isinstance(row, torch.Tensor) and row.shape == (1, model.embed_dim)
        torch.testing.assert_close(row, one_at_a_time(model, text), atol=1e-5, rtol=1e-5)
    assert tail[0].untyped_storage().nbytes() == 4 * model.embed_dim  # its own row, not the batch's tensor


def test_a_batch_holds_at_most_max_batch_texts(model):
    gated = Gated()
    batcher = TextBatcher(gated, max_batch=3)
    _, tail = first_then_queued(batcher, gated, model, TEXTS[0], TEXTS[1:6])
    assert [len(texts) for _, texts in gated.calls] == [1, 3, 2]
    assert all(isinstance(row, torch.Tensor) for row in tail.values())


def test_texts_batch_only_with_texts_of_the_same_model(model):
    gated = Gated()
    batcher = TextBatcher(gated)
    a, b = ("a", model), ("b", model)  # two owners (models), compared by identity
    head, _ = ask(batcher, a, [TEXTS[0]])
    assert gated.entered.wait(TIMEOUT)
    from_a, threads_a = ask(batcher, a, TEXTS[1:4])
    from_b, threads_b = ask(batcher, b, TEXTS[4:7])
    wait_until(lambda: batcher.queued == 6, timeout=TIMEOUT, every=0.01, what="all texts queued")
    gated.gate.set()
    for t in threads_a + threads_b:
        t.join(TIMEOUT)
        assert not t.is_alive()
    assert batcher.calls == 3
    assert sorted((owner[0], sorted(texts)) for owner, texts in gated.calls[1:]) == [
        ("a", sorted(TEXTS[1:4])), ("b", sorted(TEXTS[4:7]))]
    torch.testing.assert_close(from_b[0], one_at_a_time(model, TEXTS[4]), atol=1e-5, rtol=1e-5)


def test_an_error_of_the_tower_reaches_every_caller_of_its_batch_and_the_next_batch_works(model):
    gated = Gated(fail_on="boom")
    batcher = TextBatcher(gated)
    head, tail = first_then_queued(batcher, gated, model, TEXTS[0], ["boom", TEXTS[1], TEXTS[2]])
    assert isinstance(head[0], torch.Tensor)
    assert batcher.calls == 2
    assert all(isinstance(tail[n], ValueError) and "boom" in str(tail[n]) for n in range(3)), tail
    # the batcher is not left busy: the next texts, alone and together, are encoded
    torch.testing.assert_close(batcher.embed(model, TEXTS[1]), one_at_a_time(model, TEXTS[1]), atol=1e-5, rtol=1e-5)
    out, threads = ask(batcher, model, TEXTS[3:7])
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    assert all(isinstance(out[n], torch.Tensor) for n in range(4))
    with pytest.raises(ValueError, match="boom"):  # a lone caller gets it too
        batcher.embed(model, "boom")
    assert batcher.queued == 0


def test_one_text_per_call_when_batching_is_off(model):
    batcher = TextBatcher(max_batch=1)
    out, threads = ask(batcher, model, TEXTS)
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    assert batcher.calls == batcher.texts == len(TEXTS)
    torch.testing.assert_close(out[2], one_at_a_time(model, TEXTS[2]), atol=1e-5, rtol=1e-5)


def test_searcher_embeds_concurrent_queries_through_the_batcher(model, tmp_path):
    searcher = Searcher(Settings(home=tmp_path), model=model)
    barrier = threading.Barrier(len(TEXTS))
    out: dict = {}

    def one(n: int, text: str) -> None:
        barrier.wait(TIMEOUT)
        out[n] = searcher.embed_query(text)

    threads = [threading.Thread(target=one, args=(n, t), daemon=True) for n, t in enumerate(TEXTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    for n, text in enumerate(TEXTS):
        torch.testing.assert_close(out[n], one_at_a_time(model, text), atol=1e-5, rtol=1e-5)
        assert searcher.embed_query(text) is out[n]  # the cache in front: no second encoding
    assert searcher._batcher.texts == len(TEXTS)
