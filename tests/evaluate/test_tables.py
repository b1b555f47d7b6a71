import csv
import io
import math

import numpy as np
import pytest

from echoavc.evaluate.intervals import Interval
from echoavc.evaluate.tables import (
    PAPER_REPORTED,
    REPORTED_LABEL,
    ResultRow,
    fold_mean,
    format_reported,
    paper_entry,
    to_csv,
    to_markdown,
    with_fold_means,
    write_csv,
)


def test_paper_tables_transcribed():
    rows = {t: PAPER_REPORTED[t]["rows"] for t in PAPER_REPORTED}
    assert [len(rows[t]) for t in ("table1", "table2", "table3", "table4")] == [7, 4, 8, 18]
    assert [r["experiment"] for r in rows["table4"]] == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16,
                                                         17, 18, 19]  # the paper has no experiment 9
    assert paper_entry("table1", 4).items() >= {"precision": 0.95, "recall": 1.00, "f1": 0.98,
                                                "dataset_size": 183}.items()
    assert paper_entry("table1", 3)["precision"] == 1.00 and paper_entry("table1", 3)["recall"] == 0.95
    assert [r["accuracy"] for r in rows["table2"]] == [0.42, 0.52, 0.58, 0.39]
    assert [r["binarization_threshold"] for r in rows["table2"]] == [190, 200, 210, 220]
    assert paper_entry("table3", 2, model="EfficientNetB0")["f1"] is None
    assert paper_entry("table3", 4, model="EfficientNetB0")["dataset_size"] == 234
    assert paper_entry("table4", 17)["recall"] == 1.00 and paper_entry("table4", 17)["model"] == "MobileNetV3Large"
    assert [r["dataset_size"] for r in rows["table1"]] == [61, 183, 183, 183, 183, 549, 305]
    with pytest.raises(KeyError):
        paper_entry("table4", 9)


def test_paper_f1_agrees_with_printed_precision_and_recall():
    # A transcription check: each printed F1 must be reachable from precision and recall within their
    # rounding (+-0.005). The paper's own exceptions are listed; any other failure is a typo here.
    hm = lambda p, r: 2 * p * r / (p + r) if p + r else 0.0  # noqa: E731
    bad = []
    for table, spec in PAPER_REPORTED.items():
        for r in spec["rows"]:
            if r["f1"] is None:
                continue
            p, rc, f = r["precision"], r["recall"], r["f1"]
            lo = hm(max(p - 0.005, 0), max(rc - 0.005, 0))
            hi = hm(min(p + 0.005, 1), min(rc + 0.005, 1))
            if hi < f - 0.005 or lo > f + 0.005:
                bad.append((table, r["experiment"]))
    assert bad == [("table1", 1), ("table4", 2)]


def test_fold_mean_by_hand():
    rows = [ResultRow("B0", f"fold {i}", {"f1": Interval(v, v - 0.1, v + 0.1, "bootstrap-groups", 10)})
            for i, v in enumerate([0.8, 0.9, 1.0])]
    m = fold_mean(rows)["f1"]
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(k)
    assert (m.estimate, m.lo, m.hi) == pytest.approx((0.9, 0.9 - half, 0.9 + half))
    assert m.method == "t-folds" and m.n == 3
    one = fold_mean(rows[:1])["f1"]
    assert one.estimate == 0.8 and math.isnan(one.lo)


def _rows():
    return [
        ResultRow("rotation", "fold 1", {"precision": Interval(0.9, 0.8, 0.95, "clopper-pearson", 20),
                                         "recall": Interval(1.0, 0.83, 1.0, "clopper-pearson", 20)}),
        ResultRow("rotation", "fold 2", {"precision": Interval(0.8, 0.7, 0.9, "clopper-pearson", 20),
                                         "recall": 0.9}),
        ResultRow("zoom | 2x", "patient split", {"precision": Interval(0.7, 0.5, 0.85, "wilson", 12)}),
    ]


def test_markdown_table():
    reported = {"rotation": paper_entry("table1", 4), "zoom | 2x": paper_entry("table1", 2)}
    md = to_markdown(with_fold_means(_rows()), metrics=["precision", "recall"], reported=reported)
    lines = md.strip().splitlines()
    assert lines[0] == f"| experiment | fold / protocol | precision | recall | {REPORTED_LABEL} |"
    assert lines[2] == "| rotation | fold 1 | 0.90 [0.80, 0.95] | 1.00 [0.83, 1.00] | P 0.95, R 1.00, F1 0.98 |"
    assert lines[3] == "| rotation | fold 2 | 0.80 [0.70, 0.90] | 0.90 [n/a] |  |"  # paper column once
    assert lines[4].startswith("| rotation | mean over folds | 0.85 [")
    assert lines[5] == "| zoom \\| 2x | patient split | 0.70 [0.50, 0.85] |  | P 1.00, R 0.81, F1 0.89 |"
    assert len(lines) == 6  # a single-fold experiment gets no mean row


def test_format_reported_dash_for_missing():
    assert format_reported(paper_entry("table3", 2, model="MobileNetV3Small")) == "acc 0.44, P 0.00, R 0.00, F1 -"


def test_csv_round_trip(tmp_path):
    reported = {"rotation": paper_entry("table1", 4)}
    text = to_csv(_rows(), reported)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5
    first = rows[0]
    assert (first["experiment"], first["fold"], first["metric"]) == ("rotation", "fold 1", "precision")
    assert float(first["estimate"]) == 0.9 and float(first["lo"]) == 0.8 and first["method"] == "clopper-pearson"
    assert float(first[REPORTED_LABEL]) == 0.95
    bare = rows[3]  # "recall": 0.9 given as a float
    assert bare["lo"] == "" and bare["method"] == "point" and float(bare[REPORTED_LABEL]) == 1.0
    assert rows[4][REPORTED_LABEL] == ""
    path = write_csv(_rows(), tmp_path / "out" / "table.csv", reported)
    assert path.read_text() == text
    assert np.isclose(float(rows[2]["hi"]), 0.9)
