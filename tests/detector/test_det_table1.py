"""Table 1 runs end to end with patient folds (smoke preset) and writes Markdown and CSV beside the paper."""

from __future__ import annotations

import csv

from echoavc.dataset import make_split
from echoavc.evaluate.tables import REPORTED_LABEL
from echoavc.experiments.table1 import run_table1
from echoavc.settings import SplitSettings, detector_preset


def test_table1_two_folds_with_means_and_paper_column(synthetic_study, tmp_path):
    t = synthetic_study.table
    split = make_split(t.frame, SplitSettings(k=2, train=0.6, val=0.2, test=0.2, seed=1), t.fingerprint)
    split.save(tmp_path / "split.json")
    s = detector_preset("smoke", epochs=1, online_augment=True)  # table1 must switch online augmentation off
    res = run_table1(t, split, tmp_path / "t1", folds=2, preset="smoke", experiments=[1], settings=s, n_boot=200,
                     log=lambda m: None)
    assert [r.fold for r in res.rows] == ["fold 0", "fold 1", "mean over folds"]
    assert res.rows[-1].metrics["map50"].method == "t-folds"
    md = res.files["markdown"].read_text()
    assert REPORTED_LABEL in md and "yolov5nu, from scratch" in md and "P 1.00, R 0.26, F1 0.44" in md
    assert "online augmentation off" in md
    rows = list(csv.DictReader(res.files["csv"].open()))
    assert {r["metric"] for r in rows} >= {"precision", "recall", "f1", "map50", "false_detection_rate"}
    assert any(r["metric"] == "recall" and r[REPORTED_LABEL] == "0.26" for r in rows)
    for run in res.details["runs"]:
        info = (tmp_path / "t1" / "runs" / "e1-original" / f"fold{run['fold']}" / "detector.json").read_text()
        assert '"online_augment": false' in info and '"mosaic": 0.0' in info
    # a second call reuses the finished runs
    again = run_table1(t, split, tmp_path / "t1", folds=2, preset="smoke", experiments=[1], settings=s, n_boot=200,
                       log=lambda m: None)
    assert again.rows[0].metrics["map50"].estimate == res.rows[0].metrics["map50"].estimate
