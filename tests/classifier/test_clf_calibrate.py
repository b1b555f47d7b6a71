"""Calibration and threshold, as stored with the model."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.classifier.calibrate import Calibration, fit_calibration, pick_threshold


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    cal = fit_calibration(true_logit * 3.0, y, "temperature")  # a network 3x over-confident
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    back = Calibration.from_dict(cal.to_dict())
    assert np.allclose(back(np.array([-1.0, 0.0, 2.0])), cal(np.array([-1.0, 0.0, 2.0])))


def test_isotonic_knots_reproduce_scikit_learn():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(1)
    z = rng.normal(size=300)
    y = (rng.random(300) < 1 / (1 + np.exp(-2 * z))).astype(int)
    cal = Calibration.from_dict(fit_calibration(z, y, "isotonic").to_dict())
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(z, y)
    q = np.linspace(-4, 4, 101)
    assert np.allclose(cal(q), ref.predict(q))


def test_threshold_rules():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05])
    assert pick_threshold(y, p, "recall", 0.95) == 0.3   # all four positives: the lowest positive score
    assert pick_threshold(y, p, "recall", 0.75) == 0.6
    assert pick_threshold(y, p, "fixed", fixed=0.5) == 0.5
    assert pick_threshold(y, p, "youden") in p
    with pytest.raises(Exception):
        pick_threshold(y, p, "best")


def test_none_is_plain_sigmoid():
    assert Calibration("none")(np.array([0.0]))[0] == 0.5
