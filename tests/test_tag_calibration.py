"""How a model decides its tags (mkt.tag_calibration): per-label rules fitted on a validation set, a
pooled rule for the labels without one, rules from a collection's scores, a confidence that means
what it says; and the shipped MKT bundle carrying its rules without a new version."""

import json
import shutil

import numpy as np
import pytest

from mkt import tag_calibration as tc
from mkt.bundle import load_bundle
from mkt.calibration import Constants, Stats, statistics
from mkt.factory import SYNTHETIC_MKT_BUNDLE, create_tag_model
from mkt.synthetic import generate
from mkt.training import calibrate

# The shipped bundle's version (the scores it produces): re-calibrating it never changes it.
SHIPPED_MKT_VERSION = "f4bf5bd6912a"


def labelled_set(n: int, cuts: list[float], rate: float, seed: int, spread: float = 0.1):
    """Scores [n, L] where label j's positives score above ``cuts[j]`` and its negatives below it."""
    rng = np.random.default_rng(seed)
    truth = rng.random((n, len(cuts))) < rate
    gap = rng.uniform(0.005, spread, truth.shape)
    return np.where(truth, np.array(cuts) + gap, np.array(cuts) - gap), truth


def test_best_cut_lies_between_the_last_positive_and_the_first_negative():
    cut, f1 = tc.best_cut(np.array([0.9, 0.8, 0.6, 0.2, 0.1]), np.array([1, 1, 1, 0, 0], bool))
    assert f1 == 1.0 and cut == pytest.approx(0.4)
    assert tc.best_cut(np.array([0.3, 0.2]), np.array([False, False]))[0] == float("inf")


def test_each_label_gets_its_own_threshold_and_a_rare_one_the_pooled_rule():
    cuts = [0.1, 0.2, 0.3, 0.25]
    scores, truth = labelled_set(1200, cuts, 0.2, seed=0, spread=0.04)
    truth[:, 3], scores[:, 3] = False, np.minimum(scores[:, 3], 0.2)
    truth[:3, 3], scores[:3, 3] = True, 0.3  # three positives: too few for a rule of its own
    names = ["red", "blue", "green", "rare"]
    cal = tc.fit(scores, truth, names, top_n=4)
    assert set(cal["labels"]) == {"red", "blue", "green"}
    for name, cut in zip(names[:3], cuts[:3]):
        rule = tc.bundle_rule(cal, name)
        assert rule.source == "bundle" and abs(rule.threshold - cut) < 0.02
        assert rule.matches(cut + 0.03) and not rule.matches(cut - 0.03)
    assert tc.bundle_rule(cal, "RED").source == "bundle"  # names compare as the vocabulary does
    for other in ("rare", "a label it never saw"):
        assert tc.bundle_rule(cal, other).source == "pooled"
        assert tc.bundle_rule(cal, other).threshold == cal["pooled"]["threshold"]
    assert cal["diagnostics"]["validation"]["f1"] > 0.95


def test_only_stored_tags_can_match():
    scores, truth = labelled_set(600, [0.1, 0.2, 0.3], 0.3, seed=1)
    keep = np.zeros_like(truth)
    keep[:, 0] = True
    cal = tc.fit(scores, truth, ["a", "b", "c"], keep=keep)
    assert set(cal["labels"]) == {"a"}  # the others never had a tag stored: no positive to fit on


def test_confidence_means_what_it_says_on_a_logistic_set():
    rng = np.random.default_rng(2)
    n, slope, cut = 6000, 40.0, 0.2
    scores = rng.uniform(0.0, 0.4, (n, 2))
    truth = rng.random((n, 2)) < 1 / (1 + np.exp(-slope * (scores - cut)))
    cal = tc.fit(scores, truth, ["x", "y"], top_n=2)
    for name in ("x", "y"):
        rule = tc.bundle_rule(cal, name)
        assert abs(rule.threshold - cut) < 0.02 and 0.7 * slope < rule.slope < 1.4 * slope
    fresh = rng.uniform(0.0, 0.4, 20000)
    truth_fresh = rng.random(20000) < 1 / (1 + np.exp(-slope * (fresh - cut)))
    rule = tc.bundle_rule(cal, "x")
    confidence = np.array([rule.confidence(s) for s in fresh])
    assert tc.expected_calibration_error(confidence, truth_fresh) < 0.03
    always_sure = np.where(fresh >= rule.threshold, 1.0, 0.0)
    honest = tc.expected_calibration_error(confidence, truth_fresh)
    assert tc.expected_calibration_error(always_sure, truth_fresh) > 3 * honest


def test_unseen_labels_get_collection_rules_when_those_did_better_on_held_out_seen_labels():
    # each label on its own scale: no absolute cutoff fits them all, a cutoff from each label's
    # own distribution does
    rng = np.random.default_rng(3)
    n, labels = 800, 20
    offsets = rng.uniform(-0.4, 0.4, labels)
    truth = rng.random((n, labels)) < 0.1
    scores = offsets + np.where(truth, 0.3, 0.0) + rng.normal(0, 0.02, (n, labels))
    names = [f"label {j}" for j in range(labels)]
    cal = tc.fit(scores, truth, names, background=np.full(n, -2.0), constants=Constants(0.5, -1.0), top_n=labels)
    unseen = cal["diagnostics"]["pseudo_unseen"]
    assert cal["unseen_rule"] == "collection" and cal["pooled"] is None
    assert unseen["collection"]["f1"] > unseen["pooled"]["f1"]
    assert tc.bundle_rule(cal, "a label it never saw") is None  # the caller derives its rule from the collection
    assert tc.bundle_rule(cal, "label 3").source == "bundle"
    same_scale = tc.fit(scores - offsets, truth, names, background=np.full(n, -2.0),
                        constants=Constants(0.5, -1.0), top_n=labels)
    assert same_scale["unseen_rule"] == "pooled" and tc.bundle_rule(same_scale, "new").source == "pooled"


def test_collection_rule_follows_the_labels_spread_and_says_when_nothing_matches():
    constants = Constants(alpha=0.5, guard=-1.0)
    rule = tc.collection_rule(Stats(median=0.1, top=0.3, margin=0.2, best=0.3), constants, k=6.0)
    assert rule.threshold == pytest.approx(0.2) and rule.slope == pytest.approx(30.0)
    assert rule.source == "collection" and rule.confidence(0.3) == pytest.approx(1 / (1 + np.exp(-3.0)))
    flat = statistics(np.full(50, 0.25), background=np.zeros(50))  # no photo stands out
    nothing = tc.collection_rule(flat, constants, k=6.0)
    assert nothing.threshold is None and not nothing.matches(0.9) and nothing.confidence(0.9) == 0.0
    below_background = tc.collection_rule(Stats(0.1, 0.3, margin=-0.5, best=0.3), Constants(0.5, guard=0.0))
    assert below_background.threshold is None


def test_models_without_a_calibration_get_collection_rules():
    assert tc.bundle_rule(None, "red circle") is None
    assert tc.collection_slope(None) == tc.COLLECTION_SLOPE
    assert tc.collection_slope({"collection_slope": 12.5}) == 12.5
    assert create_tag_model("synthetic").tag_calibration is None


def test_the_shipped_mkt_bundle_carries_rules_for_its_seen_labels_only():
    bundle = load_bundle(SYNTHETIC_MKT_BUNDLE)
    assert bundle.version == SHIPPED_MKT_VERSION == bundle.compute_version()
    tags = bundle.meta["tags"]
    seen, unseen = bundle.label_families["seen"], bundle.label_families["unseen"]
    assert tags["labels"] and set(tags["labels"]) <= set(seen) and not set(tags["labels"]) & set(unseen)
    assert tags["unseen_rule"] in ("pooled", "collection") and tags["collection_slope"] > 0
    model = create_tag_model("synthetic-mkt")
    assert model.tag_calibration == tags
    for label in unseen:
        rule = tc.bundle_rule(model.tag_calibration, label)
        assert rule is None if tags["pooled"] is None else rule.source == "pooled"
    assert {tc.bundle_rule(model.tag_calibration, label).source for label in tags["labels"]} == {"bundle"}


@pytest.mark.training
def test_calibrating_tags_keeps_the_bundles_version_and_its_other_meta(tmp_path):
    bundle_file = tmp_path / "mkt.pt"
    shutil.copyfile(SYNTHETIC_MKT_BUNDLE, bundle_file)
    before = load_bundle(bundle_file)
    photos = generate(tmp_path / "photos", n=120, seed=5)
    tags = calibrate.fit_tags(str(bundle_file), str(photos))
    after = load_bundle(bundle_file)
    assert after.version == before.version == SHIPPED_MKT_VERSION
    assert after.meta["tags"] == tags and after.meta["relevance"] == before.meta["relevance"]
    assert set(tags["labels"]) <= set(after.label_families["seen"]) and tags["images"] == 120
    assert all(v.dtype == before.state_dict[k].dtype for k, v in after.state_dict.items())


def test_the_tag_bench_refuses_seeds_the_bundle_was_built_on():
    from bench import tags
    from mkt.synthetic import EVAL_SEED

    for seed in (EVAL_SEED + 1, 1000):
        with pytest.raises(SystemExit, match="choose"):
            tags.check_seed(seed)
    tags.check_seed(EVAL_SEED)


@pytest.mark.slow
def test_the_shipped_bundles_decisions_on_a_held_out_world(tmp_path, capsys):
    from bench import tags

    assert tags.main(["--direct", "--n", "80", "--seeds", "3", "--model", "synthetic-mkt"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["synthetic-mkt"]
    assert summary["photos"] == 80 and summary["all"]["precision"] > 0.85 and summary["all"]["f1"] > 0.85
    assert abs(summary["keywords_per_photo"] - summary["true_per_photo"]) < 1.0  # not 20 a photo
