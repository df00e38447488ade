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
    c = calibration.Constants(result["alpha"], result["guard"])
    for j in range(labels):
        value = calibration.cutoff_value(*calibration.statistics(scores[:, j], np.zeros(n)), c)
        assert value is not None and ((scores[:, j] >= value) == truth[:, j]).mean() > 0.98


def test_a_text_below_the_generic_captions_gets_no_cutoff():
    scores = np.linspace(-0.3, 0.2, 100)
    stats = calibration.statistics(scores, background=np.full(100, 0.5))
    assert calibration.cutoff_value(*stats, calibration.Constants()) is None
    assert calibration.cutoff_value(*stats, calibration.Constants(guard=-1.0)) is not None


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
    assert model.relevance == calibration.Constants(result["alpha"], result["guard"])
    assert create_tag_model("synthetic").relevance == calibration.Constants()  # not fitted: the defaults


def test_calibration_command_refuses_a_missing_annotation_file(tmp_path):
    bundle = tmp_path / "model.pt"
    shutil.copyfile(SYNTHETIC_BUNDLE, bundle)
    with pytest.raises(Exception, match="does not exist"):
        calibrate.main([str(bundle), "--images", str(tmp_path / "nothing")])
