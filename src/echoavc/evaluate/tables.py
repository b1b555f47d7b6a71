"""Experiment tables as Markdown and CSV, beside the paper's reported numbers.

A row is one experiment on one fold or protocol, with metric -> ``Interval``. Experiments run on
several folds also get a mean row. The paper's numbers sit in their own column, labelled
``REPORTED_LABEL``: they come from private data split by image after augmentation (field notes,
sections 1 and 3), so they are context, not targets.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

from echoavc.evaluate.intervals import Interval
from echoavc.files import atomic_write_text

__all__ = [
    "REPORTED_LABEL",
    "PAPER_REPORTED",
    "ResultRow",
    "fold_mean",
    "with_fold_means",
    "paper_entry",
    "format_reported",
    "to_markdown",
    "to_csv",
    "write_csv",
]

REPORTED_LABEL = "reported: private data, image-level split"

# Elvas et al. 2024, Tables 1-4, copied as printed (including Table 4's missing experiment 9, and
# F1 values that do not always equal the harmonic mean of the printed, rounded precision and recall).
# "-" in the paper is None here. Dataset sizes count augmented and duplicated images.
PAPER_REPORTED: dict[str, dict] = {
    "table1": {
        "title": "Object detection results (YOLOv5s)",
        "rows": (
            {"experiment": 1, "dataset_size": 61, "precision": 1.00, "recall": 0.26, "f1": 0.44,
             "description": "Original dataset"},
            {"experiment": 2, "dataset_size": 183, "precision": 1.00, "recall": 0.81, "f1": 0.89,
             "description": "Data Augmentation - zoom"},
            {"experiment": 3, "dataset_size": 183, "precision": 1.00, "recall": 0.95, "f1": 0.98,
             "description": "Data Augmentation - translation"},
            {"experiment": 4, "dataset_size": 183, "precision": 0.95, "recall": 1.00, "f1": 0.98,
             "description": "Data Augmentation - rotation"},
            {"experiment": 5, "dataset_size": 183, "precision": 0.95, "recall": 0.90, "f1": 0.93,
             "description": "Data Augmentation - gamma contrast"},
            {"experiment": 6, "dataset_size": 549, "precision": 0.91, "recall": 0.97, "f1": 0.94,
             "description": "Data Augmentation - zoom, translation, rotation and gamma contrast"},
            {"experiment": 7, "dataset_size": 305, "precision": 0.93, "recall": 1.00, "f1": 0.97,
             "description": "Data Augmentation - translation and rotation"},
        ),
    },
    "table2": {
        "title": "Aortic sclerosis classification results for heuristic experiments",
        "rows": (
            {"experiment": 1, "dataset_size": 183, "accuracy": 0.42, "precision": 0.33, "recall": 0.58,
             "f1": 0.42, "binarization_threshold": 190},
            {"experiment": 2, "dataset_size": 183, "accuracy": 0.52, "precision": 0.35, "recall": 0.39,
             "f1": 0.37, "binarization_threshold": 200},
            {"experiment": 3, "dataset_size": 183, "accuracy": 0.58, "precision": 0.40, "recall": 0.32,
             "f1": 0.36, "binarization_threshold": 210},
            {"experiment": 4, "dataset_size": 183, "accuracy": 0.39, "precision": 0.33, "recall": 0.64,
             "f1": 0.43, "binarization_threshold": 220},
        ),
    },
    "table3": {
        "title": "Aortic sclerosis classification results for experiments using different datasets",
        "rows": (
            {"experiment": 1, "dataset": "Original", "dataset_size": 61, "model": "EfficientNetB0",
             "accuracy": 0.54, "precision": 0.43, "recall": 0.60, "f1": 0.50},
            {"experiment": 1, "dataset": "Original", "dataset_size": 61, "model": "MobileNetV3Small",
             "accuracy": 0.54, "precision": 0.33, "recall": 0.20, "f1": 0.25},
            {"experiment": 2, "dataset": "Balanced", "dataset_size": 78, "model": "EfficientNetB0",
             "accuracy": 0.31, "precision": 0.0, "recall": 0.0, "f1": None},
            {"experiment": 2, "dataset": "Balanced", "dataset_size": 78, "model": "MobileNetV3Small",
             "accuracy": 0.44, "precision": 0.0, "recall": 0.0, "f1": None},
            {"experiment": 3, "dataset": "With data augmentation", "dataset_size": 183,
             "model": "EfficientNetB0", "accuracy": 0.57, "precision": 1.00, "recall": 0.06, "f1": 0.11},
            {"experiment": 3, "dataset": "With data augmentation", "dataset_size": 183,
             "model": "MobileNetV3Small", "accuracy": 0.84, "precision": 0.92, "recall": 0.71, "f1": 0.80},
            {"experiment": 4, "dataset": "Balanced w/ data augmentation", "dataset_size": 234,
             "model": "EfficientNetB0", "accuracy": 0.96, "precision": 0.96, "recall": 0.96, "f1": 0.96},
            {"experiment": 4, "dataset": "Balanced w/ data augmentation", "dataset_size": 234,
             "model": "MobileNetV3Small", "accuracy": 0.94, "precision": 0.96, "recall": 0.92, "f1": 0.94},
        ),
    },
    "table4": {
        "title": "Aortic sclerosis classification results for balanced and augmented dataset using "
                 "different models",
        "rows": (
            {"experiment": 1, "model": "EfficientNetB0", "pooling": "None",
             "accuracy": 0.96, "precision": 0.96, "recall": 0.96, "f1": 0.96},
            {"experiment": 2, "model": "EfficientNetB0", "pooling": "Max",
             "accuracy": 0.75, "precision": 0.67, "recall": 0.92, "f1": 0.79},
            {"experiment": 3, "model": "EfficientNetB0", "pooling": "Avg",
             "accuracy": 0.88, "precision": 0.88, "recall": 0.88, "f1": 0.88},
            {"experiment": 4, "model": "EfficientNetB4", "pooling": "None",
             "accuracy": 0.92, "precision": 1.00, "recall": 0.83, "f1": 0.91},
            {"experiment": 5, "model": "EfficientNetB4", "pooling": "Max",
             "accuracy": 0.86, "precision": 0.90, "recall": 0.79, "f1": 0.84},
            {"experiment": 6, "model": "EfficientNetB4", "pooling": "Avg",
             "accuracy": 0.79, "precision": 0.89, "recall": 0.67, "f1": 0.76},
            {"experiment": 7, "model": "ResNet152V2", "pooling": "None",
             "accuracy": 0.85, "precision": 0.84, "recall": 0.88, "f1": 0.86},
            {"experiment": 8, "model": "ResNet152V2", "pooling": "Max",
             "accuracy": 0.77, "precision": 0.76, "recall": 0.79, "f1": 0.78},
            {"experiment": 10, "model": "ResNet152V2", "pooling": "Avg",
             "accuracy": 0.85, "precision": 1.00, "recall": 0.71, "f1": 0.83},
            {"experiment": 11, "model": "ResNet50V2", "pooling": "None",
             "accuracy": 0.71, "precision": 0.63, "recall": 1.00, "f1": 0.77},
            {"experiment": 12, "model": "ResNet50V2", "pooling": "Max",
             "accuracy": 0.81, "precision": 0.8, "recall": 0.83, "f1": 0.82},
            {"experiment": 13, "model": "ResNet50V2", "pooling": "Avg",
             "accuracy": 0.77, "precision": 0.88, "recall": 0.63, "f1": 0.73},
            {"experiment": 14, "model": "MobileNetV3Small", "pooling": "None",
             "accuracy": 0.94, "precision": 0.96, "recall": 0.92, "f1": 0.94},
            {"experiment": 15, "model": "MobileNetV3Small", "pooling": "Max",
             "accuracy": 0.69, "precision": 0.74, "recall": 0.58, "f1": 0.65},
            {"experiment": 16, "model": "MobileNetV3Small", "pooling": "Avg",
             "accuracy": 0.85, "precision": 0.9, "recall": 0.79, "f1": 0.84},
            {"experiment": 17, "model": "MobileNetV3Large", "pooling": "None",
             "accuracy": 0.96, "precision": 0.92, "recall": 1.00, "f1": 0.96},
            {"experiment": 18, "model": "MobileNetV3Large", "pooling": "Max",
             "accuracy": 0.77, "precision": 0.81, "recall": 0.71, "f1": 0.76},
            {"experiment": 19, "model": "MobileNetV3Large", "pooling": "Avg",
             "accuracy": 0.79, "precision": 0.94, "recall": 0.63, "f1": 0.75},
        ),
    },
}

_SHORT = {"accuracy": "acc", "precision": "P", "recall": "R", "f1": "F1", "specificity": "spec",
          "auroc": "AUROC", "auprc": "AUPRC", "map50": "mAP50", "map50_95": "mAP50-95"}
_REPORTED_METRICS = ("accuracy", "precision", "recall", "f1")


@dataclass(frozen=True)
class ResultRow:
    """One experiment on one fold or protocol: metric name -> ``Interval`` (or a bare float)."""

    experiment: str
    fold: str
    metrics: Mapping[str, Interval | float] = field(default_factory=dict)


def _as_interval(v) -> Interval:
    if isinstance(v, Interval):
        return v
    x = math.nan if v is None else float(v)
    return Interval(x, math.nan, math.nan, "point", 0)


def fold_mean(rows: Iterable[ResultRow], metrics: Sequence[str] | None = None,
              level: float = 0.95) -> dict[str, Interval]:
    """Mean of each metric's estimates over ``rows`` (one per fold) with a t interval over folds.

    The interval is mean +- t(k-1) * sd / sqrt(k) over the k folds with a defined value; folds share
    training data, so it is narrower than the truth and says how stable the protocol is, not more.
    Fewer than two folds give no interval.
    """
    rows = list(rows)
    names = list(metrics) if metrics is not None else list(dict.fromkeys(m for r in rows for m in r.metrics))
    out = {}
    for name in names:
        x = np.array([_as_interval(r.metrics[name]).estimate for r in rows if name in r.metrics], dtype=float)
        x = x[np.isfinite(x)]
        k = x.size
        if k == 0:
            out[name] = Interval(math.nan, math.nan, math.nan, "t-folds", 0)
            continue
        mean = float(x.mean())
        if k < 2:
            out[name] = Interval(mean, math.nan, math.nan, "t-folds", k)
            continue
        half = float(stats.t.ppf(1 - (1 - level) / 2, k - 1) * x.std(ddof=1) / math.sqrt(k))
        out[name] = Interval(mean, mean - half, mean + half, "t-folds", k)
    return out


def with_fold_means(rows: Iterable[ResultRow], label: str = "mean over folds",
                    level: float = 0.95) -> list[ResultRow]:
    """``rows`` in order, each experiment with two or more rows followed by its ``fold_mean`` row."""
    rows = list(rows)
    out: list[ResultRow] = []
    experiments = list(dict.fromkeys(r.experiment for r in rows))
    for exp in experiments:
        mine = [r for r in rows if r.experiment == exp]
        out.extend(mine)
        if len(mine) >= 2:
            out.append(ResultRow(exp, label, fold_mean(mine, level=level)))
    return out


def paper_entry(table: str, experiment: int, **match) -> dict:
    """One row of ``PAPER_REPORTED[table]``, e.g. ``paper_entry("table3", 4, model="EfficientNetB0")``."""
    found = [r for r in PAPER_REPORTED[table]["rows"]
             if r["experiment"] == experiment and all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise KeyError(f"{table} experiment {experiment} {match}: {len(found)} rows match")
    return dict(found[0])


def format_reported(entry: Mapping | None, metrics: Sequence[str] = _REPORTED_METRICS, digits: int = 2) -> str:
    """``"P 0.95, R 1.00, F1 0.98"`` from a paper entry; "-" where the paper printed none."""
    if not entry:
        return ""
    parts = []
    for m in metrics:
        if m in entry:
            v = entry[m]
            parts.append(f"{_SHORT.get(m, m)} " + ("-" if v is None else f"{v:.{digits}f}"))
    return ", ".join(parts)


def _metric_names(rows: Sequence[ResultRow], metrics: Sequence[str] | None) -> list[str]:
    return list(metrics) if metrics is not None else list(dict.fromkeys(m for r in rows for m in r.metrics))


def to_markdown(rows: Iterable[ResultRow], metrics: Sequence[str] | None = None,
                reported: Mapping[str, Mapping] | None = None, digits: int = 2) -> str:
    """A Markdown table: experiment, fold/protocol, one column per metric (``0.91 [0.84, 0.96]``).

    ``reported`` maps an experiment name to a paper entry (see ``paper_entry``); it fills a last column
    headed ``REPORTED_LABEL`` on the experiment's first row.
    """
    rows = list(rows)
    names = _metric_names(rows, metrics)
    header = ["experiment", "fold / protocol", *names]
    if reported:
        header.append(REPORTED_LABEL)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    seen: set[str] = set()
    for r in rows:
        cells = [_cell(r.experiment), _cell(r.fold)]
        cells += [_as_interval(r.metrics[m]).format(digits) if m in r.metrics else "" for m in names]
        if reported:
            first = r.experiment not in seen
            cells.append(_cell(format_reported(reported.get(r.experiment), digits=digits)) if first else "")
        seen.add(r.experiment)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text) -> str:
    # a pipe inside a cell would split the Markdown column
    return str(text).replace("|", "\\|")


def to_csv(rows: Iterable[ResultRow], reported: Mapping[str, Mapping] | None = None) -> str:
    """Long-format CSV text: one line per (experiment, fold, metric) with estimate, lo, hi, method,
    n, n_boot_valid, and the paper's number for that metric in the ``REPORTED_LABEL`` column."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["experiment", "fold", "metric", "estimate", "lo", "hi", "method", "n", "n_boot_valid",
                REPORTED_LABEL])
    for r in rows:
        entry = (reported or {}).get(r.experiment) or {}
        for name, v in r.metrics.items():
            iv = _as_interval(v)
            paper = entry.get(name, "")
            w.writerow([r.experiment, r.fold, name, _num(iv.estimate), _num(iv.lo), _num(iv.hi), iv.method,
                        iv.n, "" if iv.n_boot_valid is None else iv.n_boot_valid,
                        "" if paper is None else paper])
    return buf.getvalue()


def _num(x: float) -> str:
    return "" if not np.isfinite(x) else repr(float(x))


def write_csv(rows: Iterable[ResultRow], path, reported: Mapping[str, Mapping] | None = None) -> Path:
    """Write ``to_csv`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    atomic_write_text(path, to_csv(rows, reported))
    return path
