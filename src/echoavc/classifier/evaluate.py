"""Evaluate a trained classifier (and the paper's baseline on the same crops) on one part of a dataset:
metrics with intervals (``echoavc.evaluate.classification_report``: patient bootstrap, Wilson and
Clopper-Pearson), recall by grade and vendor, a reliability diagram, and per-crop predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from echoavc.classifier.baseline import PAPER_THRESHOLDS, paper_call
from echoavc.classifier.data import CropSource, Sample, load_samples
from echoavc.dataset.split import Split
from echoavc.dataset.table import DatasetTable
from echoavc.errors import EchoAVCError
from echoavc.evaluate import classification_report, reliability_diagram
from echoavc.evaluate.intervals import Interval
from echoavc.settings import CropSettings

__all__ = ["report_metrics", "report_to_json", "evaluate_classifier", "baseline_crops"]


def report_metrics(report: dict) -> dict[str, Interval]:
    """The primary interval of every metric of a ``classification_report``."""
    return dict(report["metrics"])


def report_to_json(report: dict) -> dict:
    """A ``classification_report`` as plain JSON-able data."""

    def conv(v):
        if isinstance(v, Interval):
            return v.to_dict()
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating, float)):
            return None if not np.isfinite(v) else float(v)
        return v

    return conv(report)


def baseline_crops(source_table: DatasetTable, samples: list[Sample], margin: float, size: int = 224) -> np.ndarray:
    """The crops the paper's baseline binarises: ground-truth box plus margin, ``size`` (the paper's 224),
    no noise reduction, no jitter."""
    return CropSource(source_table, CropSettings(size=size, margin=margin), noise_reduction=False).batch(samples)


def evaluate_classifier(classifier, table: DatasetTable | str | Path, split: Split | str | Path | None = None,
                        part: str = "test", out: str | Path | None = None, fold: int | None = None,
                        n_boot: int = 2000, baseline: bool = True) -> dict:
    """Metrics of ``classifier`` (a loaded ``Classifier``) on ``part`` of the split (``split=None``: every
    labelled valve crop of the table, e.g. a held-out cohort). Writes ``report.json``, ``predictions.csv``
    and ``reliability.png`` into ``out`` when given."""
    if not isinstance(table, DatasetTable):
        table = DatasetTable.load(table)
    if split is not None and not isinstance(split, Split):
        split = Split.load(split)
    samples = load_samples(table, split, fold)
    if split is not None:
        samples = [s for s in samples if s.part == part]
    if not samples:
        raise EchoAVCError(f"no labelled valve crops in part {part!r}")
    # each probability as the model gives it: averaged over the box's test boxes (CropSettings.test_boxes)
    crops = CropSource(table, classifier.crop, classifier.noise_reduction).test_batch(samples)
    p = classifier.predict_proba(crops, per_box=classifier.boxes_per_probability)
    y = np.array([s.label for s in samples])
    groups = np.array([s.patient_id for s in samples])
    grades = np.array([-1 if s.grade is None else s.grade for s in samples])
    vendors = np.array([s.vendor or "unknown" for s in samples])
    rep = classification_report(y, p, classifier.threshold, groups=groups, grades=grades, vendors=vendors,
                                n_boot=n_boot)
    result = {"part": part if split is not None else "all", "n_crops": len(samples),
              "n_patients": len(set(groups)), "threshold": classifier.threshold,
              "model": str(classifier.folder) if classifier.folder else None, "report": rep}
    if baseline:
        bc = baseline_crops(table, samples, classifier.crop.margin)
        result["baseline"] = {}
        for t in PAPER_THRESHOLDS:
            call = paper_call(bc, t).astype(float)
            result["baseline"][t] = classification_report(y, call, 0.5, groups=groups, grades=grades,
                                                          n_boot=n_boot)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        doc = {k: v for k, v in result.items() if k not in ("report", "baseline")}
        doc["report"] = report_to_json(rep)
        if baseline:
            doc["baseline_paper"] = {str(t): report_to_json(r)["metrics"] for t, r in result["baseline"].items()}
        (out / "report.json").write_text(json.dumps(doc, indent=1) + "\n")
        pd.DataFrame({"key": [s.key for s in samples], "patient_id": groups, "study_id": [s.study_id for s in samples],
                      "calcified": y, "grade": grades, "vendor": vendors, "probability": p,
                      "call": (p >= classifier.threshold).astype(int)}).to_csv(out / "predictions.csv", index=False)
        if len(np.unique(y)) == 2:
            reliability_diagram(y, p, out / "reliability.png", title=f"{result['part']}: calibrated probabilities")
        result["files"] = {"report": str(out / "report.json"), "predictions": str(out / "predictions.csv"),
                           "reliability": str(out / "reliability.png")}
    return result
