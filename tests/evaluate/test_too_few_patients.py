"""Below MIN_PATIENTS_PER_CLASS patients in a class the patient bootstrap gives no interval (it used to give a
point, "auroc 0.75 [0.75, 0.75]" from two patients), and every report says so instead of printing a point or
failing on the missing bounds."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from echoavc.evaluate.classification import classification_report
from echoavc.evaluate.intervals import MIN_PATIENTS_PER_CLASS, bootstrap_by_group, format_plain
from echoavc.evaluate.screening import ExamTruth, evaluate_screening
from echoavc.screening import ClipResult, FrameResult

# two patients, one per class, two frames each: every stratified resample is the data itself
Y = np.array([1, 1, 0, 0])
P = np.array([0.9, 0.4, 0.6, 0.1])
G = np.array(["a", "a", "b", "b"])
NOTE = f"too few patients: 1 per class, need {MIN_PATIENTS_PER_CLASS}"


def test_one_patient_per_class_gives_no_interval_and_says_why():
    iv = bootstrap_by_group(roc_auc_score, G, Y, P, strata=Y, n_boot=200)
    assert iv.estimate == 0.75 and math.isnan(iv.lo) and math.isnan(iv.hi)
    assert iv.note == NOTE and iv.format() == f"0.75 [n/a ({NOTE})]"


def test_the_minimum_is_where_the_interval_starts():
    rng = np.random.default_rng(0)

    def data(k_pos, k_neg):
        g = np.repeat(np.arange(k_pos + k_neg), 3)
        y = (g < k_pos).astype(int)
        return g, y, rng.random(g.size) + 0.3 * y

    m = MIN_PATIENTS_PER_CLASS
    g, y, s = data(m, m)
    at_min = bootstrap_by_group(roc_auc_score, g, y, s, strata=y, n_boot=100)
    assert at_min.lo < at_min.estimate < at_min.hi and at_min.note == ""
    g, y, s = data(m - 1, m + 3)
    unstratified = bootstrap_by_group(roc_auc_score, g, y, s, n_boot=50)
    assert unstratified.note == "" and unstratified.n == 2 * m + 2  # without strata: one class of patients
    iv = bootstrap_by_group(roc_auc_score, g, y, s, strata=y, n_boot=200)
    assert math.isnan(iv.lo) and iv.note == f"too few patients: {m - 1} in a class, need {m}"


def test_classification_report_falls_back_to_exact_intervals_for_proportions_only():
    r = classification_report(Y, P, 0.5, groups=G, n_boot=200)
    auroc = r["metrics"]["auroc"]
    assert auroc.estimate == 0.75 and math.isnan(auroc.lo) and auroc.note == NOTE
    recall = r["metrics"]["recall"]  # 1/2 frames: Clopper-Pearson, an interval that needs no resampling
    assert recall.method == "clopper-pearson" and 0 < recall.lo < 0.5 < recall.hi < 1
    assert r["intervals"]["recall"]["bootstrap"].note == f"too few calcified patients: 1, need {MIN_PATIENTS_PER_CLASS}"
    # recall rests on the calcified patients alone: five of them give it a bootstrap interval
    g = np.repeat(np.arange(6), 2)
    y = (g < 5).astype(int)
    p = np.linspace(0.05, 0.95, 12)
    r = classification_report(y, p, 0.5, groups=g, n_boot=200)
    assert r["intervals"]["recall"]["bootstrap"].note == ""
    assert r["intervals"]["specificity"]["bootstrap"].note.startswith("too few normal patients: 1, need")


def _clip(exam, p):
    return ClipResult(exam, exam, exam, [FrameResult(exam, exam, 0, "decided", 0.9, [1.0, 2.0, 30.0, 40.0], p)], 0)


def test_every_report_prints_the_reason_instead_of_a_point_or_a_crash():
    from echoavc.model_card import _test_lines
    from echoavc.demo import describe
    from echoavc.evaluate.screening_report import evaluation_markdown
    from echoavc.report.html import _card_value

    clips = [_clip("E1", 0.9), _clip("E2", 0.1), _clip("E3", 0.95), _clip("E4", 0.2)]
    truth = {e: ExamTruth(e, f"P{e}", y, grade=2 if y else 0, vendor="V") for e, y in
             (("E1", 1), ("E2", 0), ("E3", 1), ("E4", 0))}
    report, _ = evaluate_screening(clips, truth, 0.5, 0.5, "mean", n_boot=200)
    auroc = report["exam_decided"]["auroc"]
    note = f"too few patients: 2 per class, need {MIN_PATIENTS_PER_CLASS}"
    assert (auroc["value"], auroc["low"], auroc["high"], auroc["no_interval"]) == (1.0, None, None, note)
    shown = f"1.00 [n/a ({note})]"
    assert format_plain(auroc) == shown  # what `echoavc evaluate` prints
    report.update(model={"bundle": "b"}, data={"label": "test"})
    assert f"| auroc | {shown} |" in evaluation_markdown(report)
    assert shown in "\n".join(_test_lines({"counts": report["counts"], "exam_decided": report["exam_decided"]}))
    assert f"auroc {shown}" in describe({**report, "heldout_seed": 1})
    html = _card_value(auroc)
    assert f"1.00 [n/a ({note})]" in html and "no_interval" not in html
