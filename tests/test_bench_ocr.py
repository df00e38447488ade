"""bench.ocr, the words-in-photos measurement: its generated photos are what their truth says (same
seed, same files; each word's height the one drawn; some photos bare), its counting compares words
as search folds them and puts a misread on the word it lies on, and a small run of the whole bench
prints its tables and one JSON line, direct and end to end (the real engine, the real commands)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bench.ocr_photos import BUCKETS, generate, read_truth
from bench.ocr_score import NOWHERE, Tally, bucket, rank_direct, recall_at_10, relevant_photos, within_one_edit

SQUARE = [[100, 100], [200, 100], [200, 130], [100, 130]]


def test_generated_photos_are_what_their_truth_says(tmp_path):
    a = read_truth(generate(tmp_path / "a", 12, seed=4))
    b = read_truth(generate(tmp_path / "b", 12, seed=4))
    assert a == b
    assert [(tmp_path / "a" / r["file"]).read_bytes() for r in a] == [(tmp_path / "b" / r["file"]).read_bytes()
                                                                      for r in b]
    words = [w for r in a for w in r["words"]]
    assert words and any(not r["words"] for r in a)
    low, high = BUCKETS[0][0], BUCKETS[-1][1]
    assert all(low - 1 <= w["height"] <= high + 1 and abs(w["angle"]) <= 15 for w in words)
    for row in a:
        w, h = row["size"]
        for word in row["words"]:
            box = np.asarray(word["box"])
            assert (box >= 0).all() and (box[:, 0] <= w).all() and (box[:, 1] <= h).all()


def test_words_compare_folded_and_misreads_count_where_they_lie():
    row = {"file": "x.jpg", "background": "noise",
           "words": [{"text": "CAFÉ", "height": 25.0, "angle": 0.0, "font": "f", "box": SQUARE},
                     {"text": "Zürich", "height": 12.0, "angle": 0.0, "font": "f",
                      "box": [[300, 300], [400, 300], [400, 312], [300, 312]]}]}
    lines = [("cafe", 0.9, SQUARE), ("Zurieh", 0.7, [[300, 300], [400, 300], [400, 312], [300, 312]]),
             ("Exit", 0.8, [[10, 10], [40, 10], [40, 20], [10, 20]])]
    tally = Tally()
    tally.add(row, lines)
    by = {label: rest for label, *rest in tally.rows()}
    assert by["20-30"][:3] == [1, 1, 1.0]  # CAFÉ read as "cafe": found
    assert by["10-15"][:4] == [1, 0, 0.0, 1.0]  # Zürich read one letter off: found only with one edit allowed
    assert tally.wrong["10-15"] == 1 and tally.wrong[NOWHERE] == 1  # the misread on its word; "exit" on nothing
    assert by[">= 20 px"][-1] == 1.0 and by["all heights"][-2:] == [2, 0.5]
    assert [m[1] for m in tally.missed] == ["Zürich"]


def test_buckets_edits_and_search_recall():
    assert [bucket(h) for h in (9, 10, 14.9, 15, 29, 49.5, 79, 81)] == ["10-15", "10-15", "10-15", "15-20", "20-30",
                                                                         "30-50", "50-80", "50-80"]
    assert within_one_edit("pizza", "pizze") and within_one_edit("museum", "museu") and not within_one_edit("ab", "ba")
    reads = {"a.jpg": [("Pizza bar", 0.9, SQUARE)], "b.jpg": [("pizze", 0.6, SQUARE)], "c.jpg": []}
    assert rank_direct(reads, "pizza", tolerant=False) == ["a.jpg"]
    assert rank_direct(reads, "pizza", tolerant=True) == ["a.jpg", "b.jpg"]
    truth = [{"file": f, "words": [{"text": "Pizza", "height": h}]} for f, h in (("a.jpg", 30), ("c.jpg", 12))]
    assert relevant_photos(truth, 20) == {"pizza": {"a.jpg"}}
    assert recall_at_10({"pizza": ["a.jpg"]}, relevant_photos(truth)) == 0.5


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_small_direct_run_prints_its_tables(capsys):
    from bench.ocr import main

    assert main(["--n", "4", "--seed", "2", "--direct", "--real", "page.png,astronaut.png"]) == 0
    out = capsys.readouterr().out
    summary = _last_json(out)
    assert "word recall and precision by word height" in out and "seconds per photo" in out
    table = summary["by_height"]["all heights"]
    assert table["words"] == sum(len(r["words"]) for r in read_truth_of(4, 2)) and table["found"] > 0
    assert summary["real"]["words"] == 48 and summary["real"]["words_found"] > 0
    assert summary["real"]["textless_photos"] == 1


def read_truth_of(n: int, seed: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        return read_truth(generate(Path(tmp), n, seed))


@pytest.mark.slow
def test_a_small_run_end_to_end_tags_and_searches(capsys):
    from bench.ocr import main

    assert main(["--n", "4", "--seed", "2", "--model", "synthetic", "--real", ""]) == 0
    out = capsys.readouterr().out
    e2e = _last_json(out)["end_to_end"]
    assert {"tag_s_without_ocr", "tag_s_with_ocr", "ratio"} <= set(e2e)
    assert e2e["search"]["text: recall@10 by words alone, all heights"] > 0  # text: found photos by their words
    assert e2e["search"]["plain recall@10 by words alone, all heights"] > 0  # and so did the plain words
