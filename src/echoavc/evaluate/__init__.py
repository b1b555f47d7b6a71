"""Evaluation shared by the detector and classifier stages: metrics, intervals, calibration, tables.

- ``intervals``: Wilson and Clopper-Pearson intervals, the patient (group) bootstrap, ``Interval``.
- ``classification``: threshold and ranking metrics with intervals; thresholds chosen on validation.
- ``calibration``: reliability diagram, ECE, temperature scaling, isotonic regression.
- ``detection``: one-valve-per-image detector metrics, COCO mAP50 / mAP50-95.
- ``screening``, ``heldout``, ``screening_report``, ``cli``: ``echoavc evaluate``, the whole screening path
  on held-out data (metrics, undetermined exams counted two ways, the report files).
- ``tables``: Markdown / CSV experiment tables beside the paper's reported numbers.
"""

from echoavc.evaluate.calibration import (
    apply_isotonic,
    apply_temperature,
    calibration_bins,
    expected_calibration_error,
    fit_isotonic,
    fit_temperature,
    reliability_diagram,
)
from echoavc.evaluate.classification import choose_threshold, classification_report, youden
from echoavc.evaluate.detection import DetectionRecord, average_precision, detection_report, match_top_box
from echoavc.evaluate.intervals import (
    Interval,
    bootstrap_by_group,
    clopper_pearson,
    proportion_interval,
    proportion_intervals,
    wilson,
)
from echoavc.evaluate.tables import PAPER_REPORTED, REPORTED_LABEL, ResultRow, to_csv, to_markdown

__all__ = [
    "Interval", "wilson", "clopper_pearson", "proportion_interval", "proportion_intervals",
    "bootstrap_by_group", "classification_report", "choose_threshold", "youden", "calibration_bins",
    "expected_calibration_error", "reliability_diagram", "fit_temperature", "apply_temperature",
    "fit_isotonic", "apply_isotonic", "DetectionRecord", "match_top_box", "average_precision",
    "detection_report", "PAPER_REPORTED", "REPORTED_LABEL", "ResultRow", "to_markdown", "to_csv",
]
