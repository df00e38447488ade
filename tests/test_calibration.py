"""A model's relevance constants: fitted on annotated photos for its seen labels, stored in the
bundle without changing its version, and used by search."""

import shutil

import numpy as np
import pytest

from mkt import calibration
from mkt.bundle import load_bundle
from mkt.factory import SYNTHETIC_BUNDLE, create_tag_model
from mkt.synthetic import generate
from mkt.training import calibrate


def test_fit_picks_constants_that_separate_matches():
    rng = np.random.default_rng(0)
    n, labels = 400, 6
    truth = rng.random((n, labels)) < 0.1
    scores = np.where(truth, 0.5, -0.2) + rng.normal(0, 0.05, (n, labels))  # matches well apart
    result = calibration.fit(scores, truth, background=np.full(n, 0.0))
    assert result["f1"] > 0.97 and result["labels"] == labels
    c = calibration.Constants(result["alpha"], result["guard"], result["floor"])
    for j in range(labels):
        value = calibration.cutoff_value(calibration.statistics(scores[:, j], np.zeros(n)), c)
        assert value is not None and ((scores[:, j] >= value) == truth[:, j]).mean() > 0.98


def test_a_text_below_the_generic_captions_gets_no_cutoff():
    scores = np.linspace(-0.3, 0.2, 100)
    stats = calibration.statistics(scores, background=np.full(100, 0.5))
    assert calibration.cutoff_value(stats, calibration.Constants()) is None
    assert calibration.cutoff_value(stats, calibration.Constants(guard=-1.0)) is not None


def test_a_text_whose_best_photos_score_below_the_floor_gets_no_cutoff():
    stats = calibration.statistics(np.linspace(-0.3, 0.2, 100), background=np.full(100, -1.0))
    assert calibration.cutoff_value(stats, calibration.Constants(floor=0.25)) is None
    assert calibration.cutoff_value(stats, calibration.Constants(floor=0.15)) is not None


def test_fit_against_known_absent_texts_sets_a_floor_that_keeps_them_empty():
    """Labels whose photos score 0.5 among partial matches at 0.2; texts that name nothing top out
    near 0.1: the fit finds a floor between them, so those texts match nothing, each label without
    its own photos matches nothing, and the labels keep their matches."""
    rng = np.random.default_rng(1)
    n, labels = 500, 8
    truth = rng.random((n, labels)) < 0.05
    partial = rng.random((n, labels)) < 0.2
    scores = np.where(truth, 0.5, np.where(partial, 0.2, -0.1)) + rng.normal(0, 0.02, (n, labels))
    absent = rng.normal(-0.1, 0.05, (n, 5)).clip(max=0.1)
    result = calibration.fit(scores, truth, np.full(n, -1.0), absent)
    c = calibration.Constants(result["alpha"], result["guard"], result["floor"])
    assert c.floor is not None and 0.1 < c.floor < 0.5
    assert result["absent_empty"] == 1.0 and result["f1"] > 0.97 and result["absent_cases"] == labels + 5
    for j in range(5):
        assert calibration.cutoff_value(calibration.statistics(absent[:, j], np.full(n, -1.0)), c) is None
    without_guard = calibration.fit(scores, truth, np.full(n, -1.0), absent_weight=0.0)
    assert without_guard["floor"] is None or without_guard["absent_empty"] < 1.0  # nothing asked it to be empty


@pytest.mark.training
def test_fitted_constants_live_in_the_bundle_and_keep_its_version(tmp_path):
    bundle = tmp_path / "model.pt"
    shutil.copyfile(SYNTHETIC_BUNDLE, bundle)
    before = load_bundle(bundle).version
    photos = generate(tmp_path / "photos", n=48, seed=3)
    result = calibrate.fit_bundle(str(bundle), str(photos))
    stored = load_bundle(bundle)
    assert stored.version == before and stored.meta["relevance"]["alpha"] == result["alpha"]
    model = create_tag_model(f"mkt:{bundle}")
    assert model.relevance == calibration.Constants(result["alpha"], result["guard"], result["floor"])
    for shipped in ("synthetic", "synthetic-mkt"):  # both fitted against known-absent texts
        assert create_tag_model(shipped).relevance.floor is not None, shipped
    with pytest.warns(UserWarning, match="random weights"):
        untrained = create_tag_model("open_clip:tagscope-tiny")
    assert untrained.relevance == calibration.Constants()  # not fitted: defaults


def test_calibration_command_refuses_a_missing_annotation_file(tmp_path):
    bundle = tmp_path / "model.pt"
    shutil.copyfile(SYNTHETIC_BUNDLE, bundle)
    with pytest.raises(Exception, match="does not exist"):
        calibrate.main([str(bundle), "--images", str(tmp_path / "nothing")])
