"""Data sets: annotation formats, splits, and the BiAM NUS-WIDE converter on hand-made h5 files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from core.errors import TagscopeError
from mkt.annotations import Split, label_matrix, nus_wide_split, read_annotations, read_label_list
from mkt.synthetic import COLOURS, SHAPES, label_families, synthetic_split

from .commands import run_cli


def test_jsonl_and_csv_annotations_give_the_same_matrix(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"file": "x.jpg", "labels": ["dog", "beach"], "ignore": ["sea"]}\n'
                                      '{"file": "y.jpg", "labels": []}\n')
    (tmp_path / "a.csv").write_text("path,tags\nx.jpg,dog;beach\ny.jpg,\n")
    labels = ["dog", "beach", "sea", "cat"]
    jsonl = label_matrix(read_annotations(tmp_path / "a.jsonl"), labels)
    assert jsonl.tolist() == [[1, 1, 0, -1], [-1, -1, -1, -1]]
    csv = label_matrix(read_annotations(tmp_path / "a.csv"), labels)
    assert csv.tolist() == [[1, 1, -1, -1], [-1, -1, -1, -1]]


def test_bad_annotation_line_names_the_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"file": "x.jpg", "labels": []}\n{"labels": ["dog"]}\n')
    with pytest.raises(TagscopeError, match="bad.jsonl:2"):
        read_annotations(tmp_path / "bad.jsonl")


def test_split_rejects_overlap_and_reads_crlf_lists(tmp_path):
    (tmp_path / "l.txt").write_bytes(b"airport\r\nanimal\r\n\r\n# comment\r\nanimal\r\n")
    assert read_label_list(tmp_path / "l.txt") == ["airport", "animal"]
    with pytest.raises(TagscopeError, match="both seen and unseen"):
        Split(["a", "b"], ["b"])


def test_synthetic_split_keeps_every_colour_and_shape_seen():
    split = synthetic_split(20)
    assert len(split.unseen) == 20 and len(split.seen) == sum(map(len, label_families().values())) - 20
    seen_compounds = [x for x in split.seen if x in set(label_families()["compound"])]
    for part in COLOURS + SHAPES:
        assert any(part in c.split() for c in seen_compounds), part


def write_biam(root, taglist, concepts):
    """BiAM's layout, small: h5 label vectors per image name, pickled name lists."""
    h5py = pytest.importorskip("h5py")
    split = nus_wide_split(taglist, concepts)
    (root / "features").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = {"train": ["actor_0001_111.jpg", "beach_0002_222.jpg"], "test": ["sky_0003_333.jpg"]}
    truth = {}
    for part, n_labels, h5_name in [("train", len(split.seen), "nus_wide_train.h5"),
                                    ("test", len(split.all), "nus_wide_test.h5")]:
        with h5py.File(root / "features" / h5_name, "w") as h5:
            for name in names[part]:
                vec = -np.ones(n_labels, np.int32)
                hot = rng.choice(n_labels, size=3, replace=False)
                vec[hot] = 1
                h5[f"{name}-labels"] = vec
                truth[name] = {split.all[j] for j in hot}
    with open(root / "img_names.pkl", "wb") as fh:
        pickle.dump({"img_names": names["train"]}, fh)
    with open(root / "test_img_names.pkl", "wb") as fh:
        pickle.dump({"img_names": names["test"]}, fh)
    return split, truth


def test_biam_files_convert_to_jsonl_with_the_protocol_split(tmp_path):
    taglist, concepts = tmp_path / "TagList1k.txt", tmp_path / "Concepts81.txt"
    taglist.write_text("\n".join([f"tag{i}" for i in range(20)] + ["sky", "beach"]) + "\n")
    concepts.write_text("sky\r\nbeach\r\nfire\r\n")
    split, truth = write_biam(tmp_path, taglist, concepts)
    assert split.unseen == ["sky", "beach", "fire"] and len(split.seen) == 20
    out = run_cli("data", "nus-wide", "--biam-features", str(tmp_path / "features"), "--biam-names", str(tmp_path),
                  "--taglist", str(taglist), "--concepts", str(concepts), "--out", str(tmp_path / "out"),
                  home=tmp_path)
    assert "wrote 2 training and 1 test images" in out.stdout
    rows = [json.loads(x) for x in (tmp_path / "out" / "test.jsonl").read_text().splitlines()]
    assert rows == [{"file": "Flickr/sky/0003_333.jpg", "labels": sorted(truth["sky_0003_333.jpg"],
                                                                          key=split.all.index)}]
    train = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert train[0]["file"] == "Flickr/actor/0001_111.jpg"
    assert read_label_list(tmp_path / "out" / "unseen.txt") == ["sky", "beach", "fire"]
