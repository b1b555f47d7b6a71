"""Evaluation shared by the detector and classifier stages: metrics, intervals, calibration, tables.

- ``intervals``: Wilson and Clopper-Pearson intervals, the patient (group) bootstrap, ``Interval``.
- ``classification``: threshold and ranking metrics with intervals; thresholds chosen on validation.
- ``calibration``: reliability diagram, ECE, temperature scaling, isotonic regression.
- ``detection``: one-valve-per-image detector metrics, COCO mAP50 / mAP50-95.
- ``screening``, ``heldout``, ``screening_report``, ``cli``: ``echoavc evaluate``, the whole screening path
  on held-out data (metrics, undetermined exams counted two ways, the report files).
- ``tables``: Markdown / CSV experiment tables beside the paper's reported numbers.
"""

from echoavc.lazy import lazy_exports

# Lazy: every CLI start imports ``echoavc.evaluate.cli``, which must not pay for SciPy.
_EXPORTS = {
    **dict.fromkeys(["apply_isotonic", "apply_temperature", "calibration_bins", "expected_calibration_error",
                     "fit_isotonic", "fit_temperature", "reliability_diagram"], "calibration"),
    **dict.fromkeys(["choose_threshold", "classification_report", "youden"], "classification"),
    **dict.fromkeys(["DetectionRecord", "average_precision", "detection_report", "match_top_box"], "detection"),
    **dict.fromkeys(["Interval", "bootstrap_by_group", "clopper_pearson", "proportion_interval",
                     "proportion_intervals", "wilson"], "intervals"),
    **dict.fromkeys(["PAPER_REPORTED", "REPORTED_LABEL", "ResultRow", "to_csv", "to_markdown"], "tables"),
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
