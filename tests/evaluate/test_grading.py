"""The severity grade in ``echoavc evaluate``: quadratic weighted kappa with a patient-bootstrap interval, the
confusion matrix (Markdown, PNG), the grade columns of exams.csv only when the model grades (issue 17)."""

from __future__ import annotations

import csv

import numpy as np
from sklearn.metrics import cohen_kappa_score

from echoavc.evaluate.grading import confusion_markdown, grade_report, quadratic_kappa
from echoavc.evaluate.screening import ExamTruth, evaluate_screening
from echoavc.evaluate.screening_report import EXAM_COLUMNS, write_evaluation
from echoavc.screening import ClipResult, FrameResult


def test_qwk_matches_scikit_learn_and_its_interval_resamples_patients():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 120)
    pred = np.clip(true + rng.choice([-1, 0, 0, 0, 1], 120), 0, 3)
    patients = np.repeat(np.arange(40), 3)  # three exams per patient
    rep = grade_report(true, pred, patients, n_classes=4, n_boot=400)
    q = rep["qwk"]
    assert q["value"] == round(cohen_kappa_score(true, pred, weights="quadratic"), 4)
    assert q["method"] == "bootstrap-groups" and q["n_patients"] == 40 and q["low"] < q["value"] < q["high"]
    cm = np.array(rep["confusion_matrix"])
    assert cm.sum() == 120 and np.trace(cm) == (true == pred).sum() and cm[0, 3] == 0
    assert rep["by_true_grade"]["2"]["within_one"] == 1.0
    md = confusion_markdown(rep)
    assert "| 3 (severe) |" in md and md.count("\n") == 5
    # a model that knows grades 0-2 only, judged on a truth holding grade 3: the matrix covers both
    small = grade_report([0, 3, 1, 3], [0, 2, 1, 2], ["a", "b", "c", "d"], n_classes=3, n_boot=50)
    assert small["classes"] == [0, 1, 2, 3] and small["confusion_matrix"][3] == [0, 0, 2, 0]
    # a severe valve called mild costs more agreement than one called moderate
    assert quadratic_kappa([0, 1, 2, 3], [0, 1, 2, 1]) < quadratic_kappa([0, 1, 2, 3], [0, 1, 2, 2])


def _clip(exam, src, probs, grades=None):
    frames = [FrameResult(exam, src, i, "decided", 0.9, [1.0, 2.0, 30.0, 40.0], p, "",
                          grade_probabilities=None if grades is None else grades[i]) for i, p in enumerate(probs)]
    return ClipResult(src, src, exam, frames, 0)


def test_exam_grade_is_reported_with_kappa_and_files_only_when_the_model_grades(tmp_path):
    one_hot = np.eye(4).tolist()
    truth = {f"E{i}": ExamTruth(f"E{i}", f"P{i}", int(g > 0), g) for i, g in enumerate([0, 0, 1, 2, 3, 3, 1, 2])}
    called = [0, 0, 1, 2, 3, 2, 2, 2]  # two exams one grade off
    graded = [_clip(e, e + ".dcm", [0.2 + 0.2 * g] * 2, [one_hot[c], one_hot[c]])
              for (e, t), c in zip(truth.items(), called) for g in [t.grade]]
    report, rows = evaluate_screening(graded, truth, 0.5, 0.5, n_boot=200)
    g = report["grade"]
    assert g["exams_graded"] == 8 and g["confusion_matrix"][3] == [0, 0, 1, 1]
    assert g["qwk"]["value"] == round(cohen_kappa_score([t.grade for t in truth.values()], called,
                                                        weights="quadratic"), 4)
    assert [r["grade_predicted"] for r in rows] == called
    files = write_evaluation(tmp_path / "graded", {**report, "rows": rows, "model": {"bundle": "b"}})
    assert (tmp_path / "graded" / "confusion_grade.png").stat().st_size > 1000 and "confusion_grade" in files
    md = (tmp_path / "graded" / "evaluation.md").read_text()
    assert "## Severity grade" in md and "Quadratic weighted kappa" in md and "| 2 (moderate) |" in md
    head = next(csv.reader(open(tmp_path / "graded" / "exams.csv")))
    assert head == EXAM_COLUMNS + ["grade_predicted", "grade_p0", "grade_p1", "grade_p2", "grade_p3"]
    # the same screening without a grade head: no grade anywhere, exams.csv as before
    plain = [_clip(e, e + ".dcm", [0.2 + 0.2 * t.grade] * 2) for e, t in truth.items()]
    report2, rows2 = evaluate_screening(plain, truth, 0.5, 0.5, n_boot=200)
    assert "grade" not in report2 and all("grade_predicted" not in r for r in rows2)
    assert [r["decision"] for r in rows2] == [r["decision"] for r in rows]
    write_evaluation(tmp_path / "plain", {**report2, "rows": rows2, "model": {"bundle": "b"}})
    assert next(csv.reader(open(tmp_path / "plain" / "exams.csv"))) == EXAM_COLUMNS
    assert not (tmp_path / "plain" / "confusion_grade.png").exists()
    assert "Severity grade" not in (tmp_path / "plain" / "evaluation.md").read_text()
