"""The paper's binarisation baseline and the fitted variant, on hand-made images."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.classifier.baseline import (PAPER_THRESHOLDS, binarise, fit_fair_baseline, paper_call,
                                         white_area)


def test_binarise_is_strictly_above_threshold():
    img = np.array([[0, 190, 191], [220, 221, 255]], np.uint8)
    assert binarise(img, 190).tolist() == [[0, 0, 255], [255, 255, 255]]
    assert binarise(img, 220).tolist() == [[0, 0, 0], [0, 255, 255]]
    assert PAPER_THRESHOLDS == (190, 200, 210, 220)


def test_any_white_pixel_calls_calcified():
    crops = np.zeros((4, 8, 8), np.uint8)
    crops[1, 3, 3] = 221  # one pixel above 220
    crops[2, 3, 3] = 220  # equal: not white
    crops[3] = 215        # everything at 215
    assert paper_call(crops, 220).tolist() == [False, True, False, False]
    assert paper_call(crops, 210).tolist() == [False, True, True, True]
    assert white_area(crops, 210).tolist() == [0, 1, 1, 64]
    assert int(white_area(crops[3], 200)) == 64


def test_colour_pixel_is_white_only_when_every_channel_is():
    img = np.zeros((5, 5, 3), np.uint8)
    img[0, 0] = (255, 255, 100)  # bright but not white
    assert not paper_call(img[None], 220)[0]
    img[1, 1] = (230, 240, 250)
    assert paper_call(img[None], 220)[0]
    assert int(white_area(img, 220)) == 1


def test_paper_metrics_by_hand():
    # 3 calcified (two with a white pixel), 5 normal (two with a white pixel) at threshold 200
    crops = np.zeros((8, 6, 6), np.uint8)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    crops[0, 0, 0] = crops[1, 2, 2] = 250
    crops[3, 1, 1] = crops[4, 5, 5] = 201
    call = paper_call(crops, 200)
    tp = int((call & (y == 1)).sum()); fp = int((call & (y == 0)).sum())
    assert (tp, fp) == (2, 2)
    acc = (call == y.astype(bool)).mean()
    assert acc == pytest.approx((2 + 3) / 8)


def test_fair_baseline_fits_threshold_and_area_on_training_crops():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 150, size=(40, 32, 32)).astype(np.uint8)
    y = np.zeros(40, int)
    y[:20] = 1
    crops[:20, 10:14, 10:14] = 240  # calcified: a 16-pixel bright nodule
    crops[20:, 5, 5] = 240          # normal: one bright speckle each (fools the paper's any-pixel rule)
    assert paper_call(crops, 220).all()  # the paper's rule calls everything calcified
    fb = fit_fair_baseline(crops, y)
    assert fb.train_value == 1.0
    assert 1 < fb.min_area <= 16 and 150 <= fb.threshold < 240
    assert (fb.call(crops) == y.astype(bool)).all()
    assert fb.score(crops).shape == (40,)
    with pytest.raises(ValueError):
        fit_fair_baseline(crops[:20], y[:20])
