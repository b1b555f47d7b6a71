"""Evaluation of a trained model: metrics against scikit-learn and hand computation, intervals, files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from echoavc.classifier.evaluate import evaluate_classifier
from echoavc.classifier.predict import Classifier


def test_report_matches_scikit_learn(smoke_classifier, tmp_path):
    clf = Classifier.load(smoke_classifier.model_dir)
    res = evaluate_classifier(clf, smoke_classifier.table, smoke_classifier.split, "train", tmp_path, n_boot=300)
    pred = pd.read_csv(tmp_path / "predictions.csv")
    y, p = pred["calcified"].to_numpy(), pred["probability"].to_numpy()
    call = p >= clf.threshold
    assert np.array_equal(call.astype(int), pred["call"].to_numpy())
    m = res["report"]["metrics"]
    assert m["accuracy"].estimate == pytest.approx(skm.accuracy_score(y, call))
    assert m["recall"].estimate == pytest.approx(skm.recall_score(y, call))
    assert m["specificity"].estimate == pytest.approx(skm.recall_score(1 - y, ~call))
    assert m["f1"].estimate == pytest.approx(skm.f1_score(y, call))
    assert m["auroc"].estimate == pytest.approx(skm.roc_auc_score(y, p))
    assert m["auprc"].estimate == pytest.approx(skm.average_precision_score(y, p))
    assert m["brier"].estimate == pytest.approx(skm.brier_score_loss(y, p))
    assert np.array_equal(res["report"]["confusion_matrix"], skm.confusion_matrix(y, call))
    # Wilson interval for recall, by hand
    k, n = int((call & (y == 1)).sum()), int(y.sum())
    z = 1.959963984540054
    c = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    w = res["report"]["intervals"]["recall"]["wilson"]
    assert (w.lo, w.hi) == pytest.approx((c - half, c + half), abs=1e-9)
    # recall by grade covers every grade with positives, and intervals bracket the estimate
    grades = set(pred.loc[pred["calcified"] == 1, "grade"])
    assert set(res["report"]["recall_by_grade"]) == grades
    for iv in m.values():
        if np.isfinite(iv.estimate) and np.isfinite(iv.lo):
            assert iv.lo - 1e-12 <= iv.estimate <= iv.hi + 1e-12
    doc = json.loads((tmp_path / "report.json").read_text())
    assert set(doc["baseline_paper"]) == {"190", "200", "210", "220"}
    assert (tmp_path / "reliability.png").is_file()
