"""Realism in numbers against the real pydicom-data clips, and the brightness-threshold baseline."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.synth import realism as R


@pytest.fixture(scope="module")
def references():
    try:
        return R.reference_stats()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_reference_numbers_are_what_the_docs_say(references):
    by = {r["reference"]: r for r in references}
    sono, epiq = by["sonosite_a4c"], by["philips_epiq_plax"]
    assert 0.5 < sono["dark_fraction"] < 0.7 and sono["median"] < 15
    assert 0.2 < epiq["dark_fraction"] < 0.4 and 30 < epiq["median"] < 45
    assert 6 < sono["grain_lateral_px"] < 9 and 4.5 < sono["grain_axial_px"] < 7


def test_synthetic_frames_match_real_clips(cohort, references):
    rows = R.cohort_stats(cohort.out_dir)
    report = R.check(rows, references)
    bad = {k: v for k, v in report.items() if not v[2]}
    assert not bad, bad


def test_statistics_detect_an_unrealistic_image(references):
    """The checks have teeth: a flat grey or a saturated image fails them."""
    mask = np.ones((200, 200), bool)
    rng = np.random.default_rng(0)
    flat = np.clip(rng.normal(128, 3, (200, 200)), 0, 255).astype(np.uint8)
    white = np.full((200, 200), 255, np.uint8)
    for img in (flat, white):
        report = R.check([R.frame_stats(img, mask)], references)
        assert not all(ok for _, _, ok in report.values())


def test_brightness_threshold_does_not_find_calcium(tmp_path):
    """The paper's baseline (any pixel above 190..220 in the valve box) must stay poor (<= 0.75)."""
    from echoavc.synth.cohort import make_cohort

    make_cohort(tmp_path, 30, seed=21, frames_per_exam=3, distractor_fraction=0.0, workers=2, progress=False)
    res = R.baseline_accuracy(tmp_path, phase=None)
    assert all(v["n"] >= 80 for v in res.values())
    for t, v in res.items():
        assert v["accuracy"] <= 0.75, (t, v)
