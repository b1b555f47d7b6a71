
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from echoavc.evaluate.classification import (
    METRICS,
    choose_threshold,
    classification_report,
    weighted_auroc,
    weighted_average_precision,
    youden,
)
from echoavc.evaluate.intervals import clopper_pearson, wilson

# A hand-made test set: 4 positives, 4 negatives, threshold 0.5.
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1])
# predicted positive: 0.9 0.8 0.6 | 0.7  ->  tp 3, fn 1, fp 1, tn 3


def test_hand_case():
    r = classification_report(Y, P, 0.5, n_boot=200)
    m = {k: v.estimate for k, v in r["metrics"].items()}
    assert r["confusion_matrix"].tolist() == [[3, 1], [1, 3]]
    assert m["accuracy"] == 6 / 8
    assert m["precision"] == 3 / 4
    assert m["recall"] == 3 / 4
    assert m["specificity"] == 3 / 4
    assert m["f1"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == 0.75
    # pairs (pos, neg) with pos > neg: 0.9, 0.8 beat all 4; 0.6 beats 3; 0.3 beats 2 -> 13 / 16
    assert m["auroc"] == pytest.approx(13 / 16)
    # ranking 1 1 0 1 0 1 0 0: AP = (1 + 1 + 3/4 + 4/6) / 4
    assert m["auprc"] == pytest.approx((1 + 1 + 0.75 + 4 / 6) / 4)
    brier = np.mean((P - Y) ** 2)
    assert m["brier"] == pytest.approx(brier)
    assert brier == pytest.approx((0.01 + 0.04 + 0.16 + 0.49 + 0.49 + 0.16 + 0.04 + 0.01) / 8)


def test_matches_scikit_learn():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    p = np.clip(np.round(rng.normal(0.35 + 0.3 * y, 0.2), 2), 0, 1)  # rounded: many ties
    r = classification_report(y, p, 0.5, n_boot=50)
    pred = (p >= 0.5).astype(int)
    m = {k: v.estimate for k, v in r["metrics"].items()}
    assert np.array_equal(r["confusion_matrix"], skm.confusion_matrix(y, pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["auprc"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))


@given(st.integers(0, 2**32 - 1), st.integers(4, 60))
@settings(max_examples=60, deadline=None)
def test_weighted_ranking_metrics_match_scikit_learn_sample_weight(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.integers(0, 6, n) / 5.0  # coarse scores: ties everywhere
    w = rng.integers(0, 4, n)
    w[:2] = 1
    assert weighted_auroc(w, y, s) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w))
    assert weighted_average_precision(w, y, s) == pytest.approx(skm.average_precision_score(y, s, sample_weight=w))
    # integer weights are duplicated rows, which is what a bootstrap resample is
    idx = np.repeat(np.arange(n), w)
    assert weighted_auroc(np.ones(idx.size), y[idx], s[idx]) == pytest.approx(weighted_auroc(w, y, s))


def test_ranking_metrics_hand_cases():
    assert weighted_auroc(np.ones(4), [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert weighted_auroc(np.ones(2), [0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert weighted_average_precision(np.ones(3), [1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert np.isnan(weighted_auroc(np.ones(3), [1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(weighted_average_precision(np.ones(2), [0, 0], [0.1, 0.2]))


def test_intervals_by_kind_and_primary():
    r = classification_report(Y, P, 0.5, n_boot=300)
    for name in ("accuracy", "precision", "recall", "specificity"):
        assert set(r["intervals"][name]) == {"wilson", "clopper-pearson", "bootstrap", "primary"}
        # without patients, rows are the units and the exact interval is the one reported
        assert r["metrics"][name].method == "clopper-pearson"
    assert (r["intervals"]["recall"]["wilson"].lo, r["intervals"]["recall"]["wilson"].hi) == wilson(3, 4)
    assert (r["intervals"]["accuracy"]["clopper-pearson"].lo,
            r["intervals"]["accuracy"]["clopper-pearson"].hi) == clopper_pearson(6, 8)
    for name in ("f1", "balanced_accuracy", "auroc", "auprc", "brier"):
        assert set(r["intervals"][name]) == {"bootstrap", "primary"}
        assert r["metrics"][name].method == "bootstrap-rows"
    assert set(r["metrics"]) == set(METRICS)


def test_six_of_six_with_patients_reports_the_exact_bound():
    # 6 calcified patients all found, 6 healthy; two images each
    groups = np.repeat(np.arange(12), 2)
    y = (groups < 6).astype(int)
    p = np.where(y == 1, 0.9, 0.2) + np.tile([0.0, 0.05], 12)
    r = classification_report(y, p, 0.5, groups=groups, n_boot=500)
    boot = r["intervals"]["recall"]["bootstrap"]
    assert (boot.lo, boot.hi) == (1.0, 1.0)  # every resample finds every case: collapsed
    assert boot.method == "bootstrap-groups" and boot.n == 12
    primary = r["metrics"]["recall"]
    # the exact bound over the 12 images: 0.025 ** (1 / 12)
    assert primary.method == "clopper-pearson" and str(primary) == "1.00 [0.74, 1.00]"
    assert primary.lo == pytest.approx(0.025 ** (1 / 12))
    assert r["n_groups"] == 12


def test_patients_widen_the_interval_when_images_repeat_a_patient():
    rng = np.random.default_rng(0)
    n_pat, per = 30, 8
    groups = np.repeat(np.arange(n_pat), per)
    y = np.repeat(rng.integers(0, 2, n_pat), per)
    # each patient's images share one score: a patient is wholly right or wholly wrong
    p = np.repeat(np.clip(rng.normal(0.3, 0.25, n_pat), 0, 1), per) + 0.25 * y
    p = np.clip(p, 0, 1)
    by_patient = classification_report(y, p, 0.5, groups=groups, n_boot=1000)
    by_row = classification_report(y, p, 0.5, n_boot=1000)
    for name in ("accuracy", "auroc", "f1"):
        assert by_patient["intervals"][name]["bootstrap"].width > 2 * by_row["intervals"][name]["bootstrap"].width
    assert by_patient["metrics"]["accuracy"].method == "bootstrap-groups"


def test_grades_and_vendors():
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.8, 0.7, 0.6, 0.1, 0.6, 0.3])
    grades = np.array(["mild", "mild", "severe", "severe", "severe", "none", "none", "none"])
    vendors = np.array(["GE", "GE", "GE", "Philips", "Philips", "GE", "Philips", "Philips"])
    # min_per_class=1: the subset bootstrap itself (by default 3 rows are too few for one, see below)
    r = classification_report(y, p, 0.5, grades=grades, vendors=vendors, n_boot=200, min_per_class=1)
    assert set(r["recall_by_grade"]) == {"mild", "severe"}  # "none" has no positives
    mild = r["recall_by_grade"]["mild"]
    assert mild["primary"].estimate == 0.5 and mild["primary"].n == 2
    assert (mild["wilson"].lo, mild["wilson"].hi) == wilson(1, 2)
    assert r["recall_by_grade"]["severe"]["primary"].estimate == 1.0
    ge, ph = r["by_vendor"]["GE"], r["by_vendor"]["Philips"]
    assert ge["recall"]["primary"].estimate == 2 / 3 and ph["recall"]["primary"].estimate == 1.0
    assert ge["specificity"]["primary"].estimate == 1.0 and ph["specificity"]["primary"].estimate == 0.5
    boot = ge["recall"]["bootstrap"]
    assert boot.lo <= 2 / 3 <= boot.hi and boot.n_boot_valid > 0
    default = classification_report(y, p, 0.5, grades=grades, vendors=vendors, n_boot=200)["by_vendor"]["GE"]
    assert default["recall"]["bootstrap"].note == "too few rows: 3, need 5"
    assert default["recall"]["primary"] == default["recall"]["clopper-pearson"]


def test_stratified_bootstrap_keeps_every_resample():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(3), np.zeros(57)].astype(int)
    p = np.clip(rng.random(60) * 0.6 + 0.3 * y, 0, 1)
    # min_per_class=1: the resampling itself (3 positives are below the minimum for a reported interval)
    strat = classification_report(y, p, 0.5, n_boot=500, stratify=True, min_per_class=1)
    plain = classification_report(y, p, 0.5, n_boot=500, stratify=False, min_per_class=1)
    assert strat["intervals"]["auroc"]["bootstrap"].n_boot_valid == 500
    # P(no positive among 60 draws) = (57/60)**60 = 4.6%
    assert 440 < plain["intervals"]["auroc"]["bootstrap"].n_boot_valid < 500


def test_reproducible_by_seed():
    rng = np.random.default_rng(2)
    y, p, g = rng.integers(0, 2, 80), rng.random(80), rng.integers(0, 25, 80)
    a = classification_report(y, p, 0.5, groups=g, n_boot=300, seed=9)["metrics"]
    b = classification_report(y, p, 0.5, groups=g, n_boot=300, seed=9)["metrics"]
    c = classification_report(y, p, 0.5, groups=g, n_boot=300, seed=10)["metrics"]
    assert a == b and a["auroc"] != c["auroc"]


def test_input_checks():
    with pytest.raises(ValueError):
        classification_report([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError):
        classification_report([0, 1], [0.1, 1.2], 0.5)
    with pytest.raises(ValueError):
        classification_report([0, 1], [0.1, 0.2], 0.5, groups=[1])


def test_choose_threshold_hand_cases():
    y = np.array([1, 1, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.1])
    assert choose_threshold(y, p, 0.75) == 0.6  # 3 of 4 positives at >= 0.6
    assert choose_threshold(y, p, 1.0) == 0.3
    assert choose_threshold(y, p, 0.5) == 0.8
    # 0.7 * 10 is 7.000000000000001 in floating point: still the 7th positive, not the 8th
    assert choose_threshold(np.ones(10, int), np.arange(10, 0, -1) / 10, 0.7) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        choose_threshold(np.zeros(3, int), np.ones(3) / 2)


@given(st.integers(0, 2**32 - 1), st.floats(0.05, 1.0))
@settings(max_examples=100, deadline=None)
def test_choose_threshold_is_the_highest_meeting_the_target(seed, target):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[0] = 1
    p = rng.integers(0, 20, 40) / 20.0
    t = choose_threshold(y, p, target)
    recall = lambda thr: ((p >= thr) & (y == 1)).sum() / y.sum()  # noqa: E731
    assert recall(t) >= target - 1e-9
    higher = np.unique(p[p > t])
    assert all(recall(h) < target - 1e-9 for h in higher)


def test_youden():
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    # J: 0.8 -> 0.5, 0.4 -> 0.0, 0.35 -> 0.5, 0.1 -> 0.0; tie broken to the higher threshold
    assert youden(y, p) == 0.8
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200) * 0.7 + 0.3 * y, 2)
    fpr, tpr, thr = skm.roc_curve(y, p)
    assert youden(y, p) == thr[np.argmax(tpr - fpr)]


def test_youden_calling_none_is_roc_curves_choice():
    # the exam threshold (echoavc train, rule youden) relies on this: when no score beats chance, nothing is
    # called (inf), exactly as scikit-learn's roc_curve with its extra first point
    rng = np.random.default_rng(7)
    for inverted in (False, True):
        for _ in range(50):
            y = rng.integers(0, 2, 20)
            y[:2] = [0, 1]
            p = np.round(rng.random(20), 1)
            if inverted:
                p = np.where(y == 1, p * 0.5, 0.5 + p * 0.5)
            fpr, tpr, thr = skm.roc_curve(y, p)
            assert youden(y, p, call_none=True) == thr[np.argmax(tpr - fpr)]
    assert youden([0, 1], [0.9, 0.1], call_none=True) == np.inf and youden([0, 1], [0.9, 0.1]) == 0.1
