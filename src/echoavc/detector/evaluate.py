"""Evaluate a detector on one part of the table (the test patients by default).

Every valve frame and every background frame (another view, trained with an empty label) of the part's
patients is predicted; each becomes an :class:`echoavc.evaluate.DetectionRecord` (true box None for a
background frame) and :func:`echoavc.evaluate.detection_report` gives precision, recall, F1 (top box above
``conf``, IoU >= 0.5), mAP50, mAP50-95, mean IoU of the top box, the patient hit rate and the
false-detection rate on other views, each with a patient-bootstrap interval and, for proportions, Wilson and
Clopper-Pearson. Added here: the false-detection rate per view (a parasternal long-axis frame shows the
valve from the side and must not be taken for the short-axis valve), the frames without a detection, and
one row per image.

:class:`MeanBoxPredictor` is the floor every detector must beat: it returns the mean training box, with
score 1, for every image.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from echoavc.files import atomic_write_text
from echoavc.dataset.split import PARTS, Split
from echoavc.dataset.table import DatasetTable
from echoavc.detector.predict import Detections, read_image
from echoavc.errors import EchoAVCError
from echoavc.evaluate import DetectionRecord, detection_report
from echoavc.evaluate.intervals import proportion_intervals

#: Metrics of the report, in table order.
METRICS = ("precision", "recall", "f1", "map50", "map50_95", "mean_iou", "patient_hit_rate", "false_detection_rate")


class MeanBoxPredictor:
    """Predicts the mean of ``boxes`` (the training valve boxes) with score 1 on every image."""

    name = "mean training box"

    def __init__(self, boxes):
        b = np.asarray(boxes, dtype=float).reshape(-1, 4)
        if not len(b):
            raise EchoAVCError("no training valve boxes to average")
        self.box = b.mean(axis=0)

    def predict(self, images, **_) -> list[Detections]:
        return [Detections(self.box[None, :].copy(), np.ones(1)) for _ in images]


def part_frames(table: DatasetTable, split: Split | None, part: str = "test", fold: int | None = None) -> pd.DataFrame:
    """Valve and background frames of ``part``'s patients (all parts' patients when ``split`` is None)."""
    f = table.frame[table.frame["role"].isin(["valve", "background"])]
    if split is None:
        return f.reset_index(drop=True)
    if part not in PARTS:
        raise EchoAVCError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    unknown = sorted(set(f["patient_id"]) - set(split.patients))
    if unknown:
        raise EchoAVCError(f"{len(unknown)} patient(s) of the table are not in the split (e.g. {unknown[0]}): "
                           "the split was made from another table", split.path)
    patients = split.parts(fold)[part]
    return f[f["patient_id"].isin(patients)].reset_index(drop=True)


def training_boxes(table: DatasetTable, split: Split, fold: int | None = None) -> np.ndarray:
    """Valve boxes (standard space) of the training patients, for the mean-box baseline."""
    f = part_frames(table, split, "train", fold)
    v = f[f["role"] == "valve"]
    return v[["x1", "y1", "x2", "y2"]].to_numpy(float)


def predict_frames(predictor, table: DatasetTable, frames: pd.DataFrame, batch_size: int = 8) -> list[DetectionRecord]:
    """One record per frame: its key, patient, true box (None on background frames) and every predicted box."""
    records: list[DetectionRecord] = []
    rows = frames.to_dict("records")
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        images = [read_image(table.image_file(r["image_path"])) for r in chunk]
        for r, d in zip(chunk, predictor.predict(images)):
            true = np.array([r["x1"], r["y1"], r["x2"], r["y2"]], float) if r["role"] == "valve" else None
            records.append(DetectionRecord(str(r["key"]), str(r["patient_id"]), true, d.boxes, d.scores))
    return records


def evaluate_records(records: Sequence[DetectionRecord], views: Sequence[str], conf: float = 0.25,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """``detection_report`` plus the false-detection rate per view of the background frames."""
    if not records:
        raise EchoAVCError("no frames to evaluate in this part")
    rep = detection_report(records, conf_threshold=conf, n_boot=n_boot, seed=seed)
    per = rep["per_image"]
    views = np.asarray(views, dtype=object)
    detected = np.isfinite(per["top_score"])
    by_view = {}
    for v in sorted(set(views[~per["has_valve"]])):
        m = (views == v) & ~per["has_valve"]
        k, n = int((detected & m).sum()), int(m.sum())
        by_view[v] = {"false_detections": k, "frames": n,
                      "rate": proportion_intervals(k, n)["clopper-pearson"]}
    rep["false_detection_by_view"] = by_view
    rep["per_image"]["view"] = views
    return rep


def evaluate(predictor, table: DatasetTable | str | Path, split: Split | str | Path | None, part: str = "test",
             fold: int | None = None, conf: float = 0.25, n_boot: int = 2000, seed: int = 0,
             batch_size: int = 8) -> dict:
    """Predict and score every valve and background frame of ``part`` (see the module docstring)."""
    if not isinstance(table, DatasetTable):
        table = DatasetTable.load(table)
    if split is not None and not isinstance(split, Split):
        split = Split.load(split)
    frames = part_frames(table, split, part, fold)
    records = predict_frames(predictor, table, frames, batch_size)
    rep = evaluate_records(records, frames["view"].tolist(), conf, n_boot, seed)
    rep["model_name"] = getattr(predictor, "name", type(predictor).__name__)
    rep["part"], rep["fold"] = part, fold
    rep["split_fingerprint"] = split.fingerprint if split is not None else None
    rep["table_fingerprint"] = table.fingerprint
    return rep


def _jsonable(x):
    if hasattr(x, "to_dict") and not isinstance(x, (pd.DataFrame, pd.Series)):
        return _jsonable(x.to_dict())
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def report_dict(rep: dict) -> dict:
    """The report as plain JSON types (intervals as dicts, NaN as null; per-image arrays as lists)."""
    return _jsonable(rep)


def per_image_frame(rep: dict) -> pd.DataFrame:
    per = rep["per_image"]
    return pd.DataFrame({k: np.asarray(v) for k, v in per.items()})


def to_markdown(rep: dict) -> str:
    """A short human-readable report: metrics with intervals, counts, per-view false detections, lists."""
    m = rep["metrics"]
    lines = [f"# Detector evaluation: {rep.get('model_name', '')}", "",
             f"Part `{rep.get('part')}`" + (f", fold {rep['fold']}" if rep.get("fold") is not None else "")
             + f": {rep['n_images']} frames ({rep['n_with_valve']} with the valve, {rep['n_background']} of "
             f"other views) from {rep['n_patients']} patients. A prediction is the top box scoring at least "
             f"{rep['conf_threshold']:g}; it is correct when its IoU with the true box is at least "
             f"{rep['iou_threshold']:g}. Intervals: 95%, patient bootstrap ({rep['n_boot']} resamples); for "
             "proportions the wider of that and Clopper-Pearson.", "",
             "| metric | value [95% interval] |", "|---|---|"]
    for k in METRICS:
        if k in m:
            lines.append(f"| {k} | {m[k].format(3)} |")
    c = rep["counts"]
    lines += ["", f"Counts: {c['tp']} correct, {c['mislocalised']} mislocalised, "
              f"{len(rep['no_detection'])} valve frames without a detection, "
              f"{c['background_fp']} false detections on {rep['n_background']} frames of other views.", ""]
    if rep.get("false_detection_by_view"):
        lines += ["| other view | false detections | rate [Clopper-Pearson 95%] |", "|---|---|---|"]
        for v, d in rep["false_detection_by_view"].items():
            lines.append(f"| {v} | {d['false_detections']} / {d['frames']} | {d['rate'].format(3)} |")
        lines.append("")
    for title, key in (("Valve frames without a detection", "no_detection"), ("Mislocalised (IoU < 0.5)",
                       "mislocalised"), ("False detections on other views", "false_detections")):
        items = rep.get(key) or []
        lines.append(f"**{title}** ({len(items)})" + (": " + ", ".join(f"`{x}`" for x in items[:50]) if items else ""))
        if len(items) > 50:
            lines[-1] += f", ... ({len(items) - 50} more in predictions.csv)"
        lines.append("")
    return "\n".join(lines)


def write_report(rep: dict, out: str | Path) -> dict[str, Path]:
    """``evaluation.json``, ``evaluation.md`` and ``predictions.csv`` (one row per frame) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "markdown": out / "evaluation.md", "csv": out / "predictions.csv"}
    d = report_dict({k: v for k, v in rep.items() if k != "per_image"})
    atomic_write_text(paths["json"], json.dumps(d, indent=1) + "\n")
    atomic_write_text(paths["markdown"], to_markdown(rep))
    atomic_write_text(paths["csv"], per_image_frame(rep).to_csv(index=False))
    return paths
