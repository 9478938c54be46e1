"""Platt calibration: finite on separable data, recovers a known logistic relation, keeps the ranking."""
import numpy as np
import pytest

from deepfake_detector.model.model_store import apply_calibration, fit_platt, logit


def test_separable_validation_scores_give_a_finite_slope():
    calibration = fit_platt(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), np.array([0, 0, 0, 1, 1, 1]))
    assert 0 < calibration["slope"] < 10
    calibrated = apply_calibration(np.array([0.05, 0.95]), calibration)
    # Platt's smoothed targets keep probabilities away from exactly 0 and 1.
    assert 0.01 < calibrated[0] < 0.5 < calibrated[1] < 0.99


def test_recovers_a_known_miscalibration():
    # True p(fake) = sigmoid(2 * logit(raw) - 1): the raw scores are over-confident in the wrong place.
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.02, 0.98, 20000)
    labels = rng.random(20000) < 1 / (1 + np.exp(-(2 * logit(raw) - 1)))
    calibration = fit_platt(raw, labels)
    assert calibration["slope"] == pytest.approx(2.0, abs=0.1)
    assert calibration["intercept"] == pytest.approx(-1.0, abs=0.1)


def test_calibration_keeps_the_ranking_and_none_is_identity():
    raw = np.array([0.2, 0.4, 0.6, 0.9])
    calibrated = apply_calibration(raw, {"method": "platt", "slope": 1.5, "intercept": 0.3})
    assert np.all(np.diff(calibrated) > 0)
    assert np.array_equal(apply_calibration(raw, None), raw)
