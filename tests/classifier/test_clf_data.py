"""Prepared crops: margin, letterbox, the paper's noise reduction, rotation, normalisation, training copies."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.classifier.data import (CropSource, Sample, expand_training, normalise, prepare_crop, rotate_crop,
                                     subtract_minimum)
from echoavc.settings import CropSettings


def test_subtract_minimum_ignores_padding():
    crop = np.array([[0, 0, 0], [40, 50, 90], [0, 0, 0]], np.uint8)
    valid = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool)
    assert subtract_minimum(crop, valid).tolist() == [[0, 0, 0], [0, 10, 50], [0, 0, 0]]
    assert subtract_minimum(np.array([[30, 60]], np.uint8)).tolist() == [[0, 30]]


def test_prepare_crop_noise_reduction_and_size():
    img = np.full((100, 100), 30, np.uint8)
    img[40:60, 40:60] = 200
    cs = CropSettings(size=32, margin=0.1, jitter=0.0)
    raw = prepare_crop(img, (40, 40, 60, 60), cs, noise_reduction=False)
    nr = prepare_crop(img, (40, 40, 60, 60), cs, noise_reduction=True)
    assert raw.shape == nr.shape == (32, 32) and raw.dtype == np.uint8
    assert raw.min() == 30 and nr.min() == 0 and nr.max() == 170
    # a box at the image edge: padding beyond the image stays black and does not set the minimum
    edge = prepare_crop(img, (0, 0, 20, 20), cs, noise_reduction=True)
    assert edge[0, 0] == 0


def test_crop_source_matches_prepare_crop(synthetic_study):
    from echoavc.classifier.data import load_samples
    import cv2

    table = synthetic_study.table
    s = load_samples(table, synthetic_study.split)[0]
    cs = CropSettings(size=64, margin=0.1, jitter=0.1)
    src = CropSource(table, cs, True, max_jitter=0.1)
    img = cv2.imread(str(table.image_file(s.image_path)), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(src.crop_of(s), prepare_crop(img, s.box, cs, True))
    a = src.crop_of(s, 0.1, np.random.default_rng(3))
    b = prepare_crop(img, s.box, cs, True, jitter=0.1, rng=np.random.default_rng(3))
    assert np.array_equal(a, b)  # the cached context region is enough for the largest jitter


def test_rotation_and_normalise():
    crop = np.zeros((21, 21), np.uint8)
    crop[10, 2:19] = 255
    r = rotate_crop(crop, 90)
    assert r[4:17, 9:12].max(axis=1).min() > 200 and r[9:12, 2:7].max() < 50  # the bar turned upright
    x = normalise(np.stack([crop, crop]), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (2, 3, 21, 21) and x.dtype == np.float32
    assert x[0, :, 10, 10] == pytest.approx([2.0, 2.0, 2.0])
    assert x[0, :, 0, 0] == pytest.approx([-2.0, -2.0, -2.0])


def _s(i, label, patient):
    return Sample(f"k{i}", patient, "e", "x.png", (0, 0, 1, 1), label)


def test_expand_training_copies_then_balances():
    samples = [_s(0, 1, "a"), _s(1, 0, "a"), _s(2, 0, "b"), _s(3, 0, "c")]
    out = expand_training(samples, (10.0, -10.0), "duplicate", np.random.default_rng(0))
    assert len([s for s in out if s.variant.startswith("rotation") and "__dup" not in s.variant]) == 8
    labels = [s.label for s in out]
    assert labels.count(1) == labels.count(0) == 9  # 3 x 3 negatives; 3 positives duplicated to 9
    assert {s.angle for s in out} == {0.0, 10.0, -10.0}
    assert expand_training(samples) == samples
