"""``echoavc threshold-odds`` (evaluate.planning): the chance that a validation-chosen exam threshold meets a
recall and specificity goal on new exams, under the binormal model."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.stats import binom, norm
from typer.testing import CliRunner

from echoavc.cli import app
from echoavc.errors import EchoAVCError
from echoavc.evaluate.classification import choose_threshold
from echoavc.evaluate.planning import threshold_odds


def _direct(auroc, validation, test, reps, seed, test_sets=1):
    """Brute force: draw validation scores, choose the threshold as train does, draw whole test sets, count."""
    rng = np.random.default_rng(seed)
    d = math.sqrt(2) * norm.ppf(auroc)
    (vc, vn), (tc, tn) = validation, test
    y = np.r_[np.ones(vc, int), np.zeros(vn, int)]
    met = 0
    for _ in range(reps):
        t = choose_threshold(y, np.r_[rng.normal(d, 1, vc), rng.normal(0, 1, vn)], 0.95)
        ok = True
        for _ in range(test_sets):
            rec = np.mean(rng.normal(d, 1, tc) >= t)
            spec = np.mean(rng.normal(0, 1, tn) < t)
            ok &= rec >= 0.9 - 1e-9 and spec >= 0.7 - 1e-9
        met += ok
    return met / reps


def test_odds_match_a_brute_force_simulation():
    # the demo's sizes: 63 validation exams, test sets of 48; both estimates have a Monte Carlo SE near 0.008
    odds = threshold_odds(0.95, (32, 31), (24, 24), draws=4000, seed=1)
    direct = _direct(0.95, (32, 31), (24, 24), reps=4000, seed=2)
    assert abs(odds.chance_one - direct) < 0.035, (odds.chance_one, direct)
    assert 0.35 < odds.chance_one < 0.65


def test_test_sets_screened_with_one_threshold_are_not_independent():
    odds = threshold_odds(0.95, (32, 31), (24, 24), test_sets=3, draws=3000, seed=3)
    direct = _direct(0.95, (32, 31), (24, 24), reps=3000, seed=4, test_sets=3)
    assert abs(odds.chance_all - direct) < 0.035, (odds.chance_all, direct)
    # a shared threshold makes the sets' outcomes agree more often than independent sets would
    assert odds.chance_one ** 3 + 0.02 < odds.chance_all < odds.chance_one


def test_a_huge_validation_set_fixes_the_threshold_at_its_quantile():
    odds = threshold_odds(0.95, (20_000, 20_000), (24, 24), draws=200, seed=5)
    d = math.sqrt(2) * norm.ppf(0.95)
    assert odds.expected_recall == pytest.approx(0.95, abs=0.003)
    assert odds.expected_specificity == pytest.approx(norm.cdf(d - norm.ppf(0.95)), abs=0.003)
    # 22 of 24 calcified exams found, each with chance 0.95
    assert odds.chance_recall == pytest.approx(binom.sf(21, 24, 0.95), abs=0.01)


def test_better_ranking_better_odds_and_youden_is_offered():
    chances = [threshold_odds(a, draws=1000, seed=6).chance_one for a in (0.90, 0.95, 0.99)]
    assert chances[0] < chances[1] < chances[2]
    youden = threshold_odds(0.95, rule="youden", draws=500, seed=7)
    assert "Youden" in youden.line() and youden.expected_specificity > youden.expected_recall - 0.2


@pytest.mark.parametrize("kwargs, words", [
    ({"auroc": 0.5}, "AUROC must lie between 0.5 and 1"),
    ({"auroc": 1.0}, "AUROC must lie between 0.5 and 1"),
    ({"auroc": 0.9, "rule": "f1"}, "rule must be one of recall, youden"),
    ({"auroc": 0.9, "validation": (0, 10)}, "validation needs at least one calcified and one normal exam"),
    ({"auroc": 0.9, "goal_recall": 1.5}, "goal_recall must lie in (0, 1]"),
])
def test_refusals_name_the_value(kwargs, words):
    with pytest.raises(EchoAVCError, match=re.escape(words)):
        threshold_odds(**kwargs)


def test_cli_prints_a_line_per_auroc_and_refuses_bad_counts():
    runner = CliRunner()
    res = runner.invoke(app, ["threshold-odds", "--auroc", "0.93", "--auroc", "0.98", "--test-sets", "3",
                              "--draws", "500"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("AUROC 0.930") and lines[1].startswith("AUROC 0.980")
    assert all("on one" in ln and "all 3 (one threshold)" in ln for ln in lines)
    bad = runner.invoke(app, ["threshold-odds", "--auroc", "0.9", "--validation", "32"])
    assert bad.exit_code == 2 and "--validation takes CALCIFIED,NORMAL" in bad.output
