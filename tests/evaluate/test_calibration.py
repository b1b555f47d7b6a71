import numpy as np
import pytest
from PIL import Image

from echoavc.evaluate.calibration import (
    apply_isotonic,
    apply_temperature,
    calibration_bins,
    expected_calibration_error,
    fit_isotonic,
    fit_temperature,
    logit,
    reliability_diagram,
)

P = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
Y = np.array([0, 1, 0, 1, 1])


def test_bins_by_hand():
    b = calibration_bins(Y, P, n_bins=10)
    assert b["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]  # 1.0 falls in the last bin
    assert b["mean_predicted"][[0, 1, 9]] == pytest.approx([0.05, 0.15, 0.975])
    assert b["fraction_positive"][[0, 1, 9]] == pytest.approx([0.0, 0.5, 1.0])
    assert np.isnan(b["mean_predicted"][2])
    # (1 * 0.05 + 2 * 0.35 + 2 * 0.025) / 5
    assert expected_calibration_error(Y, P) == pytest.approx(0.16)
    # a value on an inner edge belongs to the bin above it
    assert calibration_bins([1], [0.1], 10)["count"][1] == 1


def test_ece_separates_calibrated_from_overconfident():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.02
    overconfident = apply_temperature(logit(p), 1 / 3)
    assert expected_calibration_error(y, overconfident) > 0.1


def test_reliability_diagram_writes_png(tmp_path):
    path = tmp_path / "plots" / "reliability.png"
    bins, ece = reliability_diagram(Y, P, path, n_bins=10)
    assert ece == pytest.approx(0.16)
    assert bins["count"].tolist() == calibration_bins(Y, P)["count"].tolist()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (450, 550)
        # something was drawn: not one flat colour
        assert len(np.unique(np.asarray(im.convert("L")))) > 5
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]  # no temporary file left


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    t = fit_temperature(3.0 * z, y)  # a model three times too confident
    assert t == pytest.approx(3.0, rel=0.08)
    assert apply_temperature(3.0 * z, t) == pytest.approx(1 / (1 + np.exp(-3.0 * z / t)))


def test_temperature_is_the_nll_minimum():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 1.5, 500)
    y = (rng.random(500) < 1 / (1 + np.exp(-0.5 * z))).astype(int)
    t = fit_temperature(z, y)

    def nll(temp):
        p = np.clip(apply_temperature(z, temp), 1e-12, 1 - 1e-12)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    assert nll(t) <= min(nll(t * 1.05), nll(t / 1.05))
    assert t > 1  # the data are softer than the logits


def test_temperature_multiclass():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, (5000, 3))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(0.5 * z, y) == pytest.approx(0.5, rel=0.1)
    q = apply_temperature(np.array([[1000.0, 0.0, -1000.0]]), 1.0)  # no overflow
    assert q.sum() == pytest.approx(1.0) and q[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fit_temperature(z, y + 3)


def test_apply_temperature_extremes_and_checks():
    p = apply_temperature(np.array([-1000.0, 0.0, 1000.0]), 2.0)
    assert p.tolist() == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        apply_temperature(np.zeros(3), 0.0)
    with pytest.raises(ValueError):
        fit_temperature(np.zeros(3), np.array([0, 2, 1]))


def test_isotonic_is_monotone_and_improves_brier_on_its_data():
    rng = np.random.default_rng(4)
    s = rng.random(2000)
    y = (rng.random(2000) < s ** 3).astype(int)  # scores too high
    model = fit_isotonic(s, y)
    grid = np.linspace(-0.5, 1.5, 201)
    q = apply_isotonic(model, grid)
    assert (np.diff(q) >= 0).all() and q.min() >= 0 and q.max() <= 1
    calibrated = apply_isotonic(model, s)
    assert np.mean((calibrated - y) ** 2) < np.mean((s - y) ** 2) - 0.02
