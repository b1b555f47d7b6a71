"""Realism in numbers against the real pydicom-data clips, and the brightness-threshold baseline."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.synth import realism as R


@pytest.fixture(scope="module")
def references():
    # pydicom-data is a test dependency: missing clips fail here instead of skipping every realism check
    return R.reference_stats()


def test_reference_clips_are_looked_up_without_downloading(monkeypatch):
    import pydicom.data

    asked = []
    monkeypatch.setattr(pydicom.data, "get_testdata_file", lambda name, read=False, download=True:
                        asked.append((name, download)))
    assert R.missing_references() == [ref.file for ref in R.REFERENCES]
    assert asked == [(ref.file, False) for ref in R.REFERENCES]
    with pytest.raises(FileNotFoundError, match="install pydicom-data"):
        R.reference_stats()


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


def _unrealistic():
    rng = np.random.default_rng(0)
    return {"flat": np.clip(rng.normal(128, 3, (200, 200)), 0, 255).astype(np.uint8),
            "white": np.full((200, 200), 255, np.uint8)}


#: The statistics each unrealistic image must fail (the old ``not all(ok)`` passed when any one did).
EXPECTED_OFF = {"flat": {"dark_fraction", "median", "grain_lateral_px", "grain_axial_px"},  # no dark, no grain
                "white": set(R.STATS)}  # saturated everywhere, no speckle: every statistic off


def off_statistics(report) -> set[str]:
    return {k for k, (_, _, ok) in report.items() if not ok}


@pytest.mark.parametrize("name", sorted(EXPECTED_OFF))
def test_statistics_detect_an_unrealistic_image(references, name):
    """The checks have teeth: a flat grey or a saturated image fails exactly the statistics it should."""
    report = R.check([R.frame_stats(_unrealistic()[name], np.ones((200, 200), bool))], references)
    assert off_statistics(report) == EXPECTED_OFF[name], report


def test_a_check_blind_to_all_but_one_statistic_is_caught(references, monkeypatch):
    """Feed the test a broken check that only looks at the median: the old assertion passes, the new one fails."""
    real = R.acceptance_ranges

    def median_only(rows):
        return {k: (v if k == "median" else (-np.inf, np.inf)) for k, v in real(rows).items()}

    monkeypatch.setattr(R, "acceptance_ranges", median_only)
    img = _unrealistic()["flat"]
    report = R.check([R.frame_stats(img, np.ones((200, 200), bool))], references)
    assert not all(ok for _, _, ok in report.values())  # the old assertion: still passes
    assert off_statistics(report) != EXPECTED_OFF["flat"]  # the new one would fail


def test_brightness_threshold_does_not_find_calcium(tmp_path):
    """The paper's baseline (any pixel above 190..220 in the valve box) must stay poor (<= 0.75)."""
    from echoavc.synth.cohort import make_cohort

    make_cohort(tmp_path, 30, seed=21, frames_per_exam=3, distractor_fraction=0.0, workers=2, progress=False)
    res = R.baseline_accuracy(tmp_path, phase=None)
    assert all(v["n"] >= 80 for v in res.values())
    for t, v in res.items():
        assert v["accuracy"] <= 0.75, (t, v)
