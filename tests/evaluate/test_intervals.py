import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from echoavc.evaluate.intervals import (
    Interval,
    bootstrap_by_group,
    clopper_pearson,
    percentile_interval,
    proportion_interval,
    proportion_intervals,
    resample_groups,
    wilson,
)

Z95 = 1.959963984540054


def test_recall_6_of_6_has_exact_lower_bound_054():
    lo, hi = clopper_pearson(6, 6)
    # every case found: P(X = 6 | p) = p**6 = 0.025 at the lower bound
    assert lo == pytest.approx(0.025 ** (1 / 6), abs=1e-12)
    assert f"{lo:.2f}" == "0.54"
    assert hi == 1.0


def test_zero_successes_exact_bounds():
    for n in (1, 5, 30):
        lo, hi = clopper_pearson(0, n)
        assert lo == 0.0
        assert hi == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-12)
        assert wilson(0, n)[0] == 0.0
        assert wilson(n, n)[1] == 1.0


def test_textbook_values_5_of_10():
    # Clopper-Pearson 5/10: 0.1871, 0.8129; Wilson 5/10 by hand: 0.5 +- 1.41601 * 0.18602 = 0.2366, 0.7634
    assert clopper_pearson(5, 10) == pytest.approx((0.187086, 0.812914), abs=1e-6)
    assert wilson(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)


def test_empty_and_invalid():
    assert all(math.isnan(x) for x in wilson(0, 0))
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))
    assert math.isnan(proportion_interval(0, 0).estimate)
    with pytest.raises(ValueError):
        wilson(4, 3)
    with pytest.raises(ValueError):
        clopper_pearson(-1, 3)
    with pytest.raises(ValueError):
        wilson(1.5, 3)
    with pytest.raises(ValueError):
        wilson(1, 3, level=1.0)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@settings(max_examples=200, deadline=None)
def test_bounds_contain_estimate_and_grow_with_level(kn):
    k, n = kn
    for f in (wilson, clopper_pearson):
        lo, hi = f(k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0
        lo99, hi99 = f(k, n, 0.99)
        assert lo99 <= lo + 1e-12 and hi99 >= hi - 1e-12


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@settings(max_examples=200, deadline=None)
def test_wilson_inverts_the_score_test(kn):
    # the Wilson bounds are the p where |phat - p| = z * sqrt(p (1 - p) / n)
    k, n = kn
    for p in wilson(k, n):
        if 0 < p < 1:
            assert abs(k / n - p) == pytest.approx(Z95 * math.sqrt(p * (1 - p) / n), rel=1e-9)


def test_clopper_pearson_covers_at_least_nominal():
    n = 20
    bounds = np.array([clopper_pearson(k, n) for k in range(n + 1)])
    for p in np.linspace(0.01, 0.99, 99):
        pmf = stats.binom.pmf(np.arange(n + 1), n, p)
        inside = (bounds[:, 0] <= p) & (p <= bounds[:, 1])
        assert pmf[inside].sum() >= 0.95 - 1e-12


def test_interval_str_and_helpers():
    iv = Interval(0.912, 0.8412, 0.9634, "wilson", 50)
    assert str(iv) == "0.91 [0.84, 0.96]"
    assert iv.format(3) == "0.912 [0.841, 0.963]"
    assert str(Interval(math.nan, math.nan, math.nan)) == "n/a"
    assert str(Interval(0.5, math.nan, math.nan)) == "0.50 [n/a]"
    assert iv.contains(0.9) and not iv.contains(0.99)
    assert iv.to_dict()["n"] == 50


def test_proportion_intervals_primary_rule():
    collapsed = Interval(1.0, 1.0, 1.0, "bootstrap-groups", 6, 2000)
    out = proportion_intervals(6, 6, bootstrap=collapsed)
    assert out["primary"].method == "clopper-pearson"
    assert out["primary"].lo == pytest.approx(0.5407, abs=1e-4)
    wide = Interval(0.5, 0.05, 0.95, "bootstrap-groups", 4, 2000)
    assert proportion_intervals(10, 20, bootstrap=wide)["primary"] is wide
    # a row bootstrap never replaces the exact interval
    rows = Interval(0.5, 0.0, 1.0, "bootstrap-rows", 20, 2000)
    assert proportion_intervals(10, 20, bootstrap=rows)["primary"].method == "clopper-pearson"


def test_percentile_interval_uses_2_5_and_97_5():
    iv = percentile_interval(np.r_[np.arange(1001.0), np.nan, np.nan], 500.0)
    assert (iv.lo, iv.hi) == pytest.approx((25.0, 975.0), abs=1e-9)
    assert iv.n_boot_valid == 1001
    assert math.isnan(percentile_interval([np.nan], 1.0).lo)


def test_resample_groups_counts_and_strata():
    groups = np.array(["a", "a", "b", "c", "c", "c", "d", "e"])
    strata = np.array([1, 0, 0, 0, 0, 0, 1, 0])  # positive patients: a (any positive row), d
    codes, counts = resample_groups(groups, 500, seed=3)
    assert codes.tolist() == [0, 0, 1, 2, 2, 2, 3, 4]
    assert counts.shape == (500, 5) and (counts.sum(axis=1) == 5).all()
    assert (counts.max(axis=1) >= 2).any()  # with replacement: some group drawn twice
    _, sc = resample_groups(groups, 500, seed=3, strata=strata)
    assert (sc[:, [0, 3]].sum(axis=1) == 2).all()
    assert (sc[:, [1, 2, 4]].sum(axis=1) == 3).all()
    _, again = resample_groups(groups, 500, seed=3)
    _, other = resample_groups(groups, 500, seed=4)
    assert np.array_equal(counts, again) and not np.array_equal(counts, other)
    _, from_rng = resample_groups(groups, 500, seed=np.random.default_rng(3))
    assert np.array_equal(counts, from_rng)


def _between_patient_data(n_patients=20, per_patient=10, seed=0):
    rng = np.random.default_rng(seed)
    patient_value = rng.normal(0, 1, n_patients)
    groups = np.repeat(np.arange(n_patients), per_patient)
    x = patient_value[groups]  # all variance is between patients
    return groups, x


def test_patient_bootstrap_is_wider_than_row_bootstrap_when_patients_differ():
    groups, x = _between_patient_data()
    by_patient = bootstrap_by_group(np.mean, groups, x, n_boot=2000, seed=1)
    by_row = bootstrap_by_group(np.mean, None, x, n_boot=2000, seed=1)
    assert by_patient.method == "bootstrap-groups" and by_patient.n == 20
    assert by_row.method == "bootstrap-rows" and by_row.n == 200
    # 20 independent units, not 200: about sqrt(10) times wider
    assert by_patient.width > 2.5 * by_row.width
    sd = x[::10].std(ddof=0)
    assert by_patient.width == pytest.approx(2 * 1.96 * sd / math.sqrt(20), rel=0.2)
    assert by_patient.estimate == pytest.approx(x.mean())


def test_vectorized_and_plain_paths_agree():
    groups, x = _between_patient_data(seed=2)

    def weighted_mean(w, v):
        return (w @ v) / w.sum(axis=1)

    plain = bootstrap_by_group(np.mean, groups, x, n_boot=400, seed=5)
    fast = bootstrap_by_group(weighted_mean, groups, x, n_boot=400, seed=5, vectorized=True)
    assert (fast.lo, fast.hi, fast.estimate) == pytest.approx((plain.lo, plain.hi, plain.estimate), abs=1e-12)


def test_reproducible_by_seed():
    groups, x = _between_patient_data(seed=4)
    a = bootstrap_by_group(np.median, groups, x, n_boot=300, seed=11)
    b = bootstrap_by_group(np.median, groups, x, n_boot=300, seed=11)
    c = bootstrap_by_group(np.median, groups, x, n_boot=300, seed=12)
    assert a == b and a != c


def test_undefined_resamples_are_dropped_and_counted():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 3)
    y = (groups == 0).astype(int)  # one positive patient of ten
    s = rng.random(30) + y

    def gap(y_, s_):
        if y_.all() or not y_.any():
            raise ValueError("one class only")
        return s_[y_ == 1].mean() - s_[y_ == 0].mean()

    iv = bootstrap_by_group(gap, groups, y, s, n_boot=1000, seed=0)
    # P(patient 0 never drawn in 10 draws) = 0.9**10 = 0.35, so about 65% of resamples are defined
    assert 590 < iv.n_boot_valid < 720
    # min_per_class=1: the resampling itself (one positive patient is below the minimum for an interval)
    strat = bootstrap_by_group(gap, groups, y, s, n_boot=1000, seed=0, strata=y, min_per_class=1)
    assert strat.n_boot_valid == 1000


def test_nan_from_scikit_learn_counts_as_undefined(recwarn):
    from sklearn.metrics import roc_auc_score

    groups = np.repeat(np.arange(10), 3)
    y = (groups == 0).astype(int)
    s = np.linspace(0, 0.9, 30) + y
    iv = bootstrap_by_group(roc_auc_score, groups, y, s, n_boot=100, seed=0)
    assert 40 < iv.n_boot_valid < 90 and iv.estimate == 1.0
    assert not [w for w in recwarn if "one class" in str(w.message).lower()]  # counted, not shouted


def test_input_checks():
    with pytest.raises(ValueError):
        bootstrap_by_group(np.mean, [1, 2], np.arange(3.0))
    with pytest.raises(ValueError):
        bootstrap_by_group(np.mean, None, np.arange(3.0), np.arange(4.0))
