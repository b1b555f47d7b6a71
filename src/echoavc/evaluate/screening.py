"""Metrics of the whole screening path on labelled data that no training choice touched.

Records in (the screening's :class:`~echoavc.screening.ClipResult` per input, the truth per exam and, where
known, per frame), one JSON-able report out: frame-, clip- and exam-level metrics with patient-bootstrap and
exact intervals (:func:`echoavc.evaluate.classification_report`), coverage beside accuracy, recall by grade and
vendor. An exam with no decided frame, or whose every file failed, is *undetermined*: it is never dropped, and
the exam metrics are given two ways, over decided exams (with coverage beside them) and with undetermined exams
counted as errors (a calcified one missed, a normal one flagged).

Running the screening and joining labels (a dataset part, or raw exams with labels.csv) is
:mod:`echoavc.evaluate.heldout`; the files (JSON, Markdown, PNG) are :mod:`echoavc.evaluate.screening_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from echoavc.evaluate.classification import classification_report
from echoavc.evaluate.intervals import Interval, proportion_intervals

__all__ = ["ExamTruth", "FrameTruth", "evaluate_screening", "summarise", "clip_probability", "undetermined_scores"]

#: headline metrics of a level, in report order
HEADLINE = ("auroc", "recall", "specificity", "accuracy", "balanced_accuracy", "precision", "f1", "auprc", "brier")


@dataclass(frozen=True)
class ExamTruth:
    """What is known about one exam: its patient (the bootstrap unit), its label, grade and scanner vendor."""

    exam_id: str
    patient_id: str
    calcified: int | None
    grade: int | None = None
    vendor: str = "unknown"


@dataclass(frozen=True)
class FrameTruth:
    """One frame's own label, where the data has one (a dataset table); raw exams have exam labels only."""

    role: str  # "valve" (annotated valve-view frame) or another role (other views, background)
    calcified: int | None


@dataclass
class _Level:
    y: list = field(default_factory=list)
    p: list = field(default_factory=list)
    patient: list = field(default_factory=list)
    grade: list = field(default_factory=list)
    vendor: list = field(default_factory=list)

    def add(self, y: int, p: float, t: ExamTruth) -> None:
        self.y.append(int(y))
        self.p.append(float(p))
        self.patient.append(t.patient_id)
        self.grade.append(-1 if t.grade is None else int(t.grade))
        self.vendor.append(t.vendor or "unknown")


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, 4) if np.isfinite(v) else None


def _iv(iv: Interval, count: str | None = None) -> dict:
    out = {"value": _num(iv.estimate), "low": _num(iv.lo), "high": _num(iv.hi), "method": iv.method}
    if iv.note:
        out["no_interval"] = iv.note
    if count is not None:
        out["count"] = count
    return out


def proportion(k: int, n: int) -> dict:
    """k of n with its Wilson and Clopper-Pearson intervals (the primary one: Clopper-Pearson)."""
    ivs = proportion_intervals(k, n)
    out = _iv(ivs["clopper-pearson"], f"{k}/{n}")
    out["wilson"] = [_num(ivs["wilson"].lo), _num(ivs["wilson"].hi)]
    return out


def _sub(ivs: dict) -> dict:
    w = ivs["wilson"]
    k = int(round(w.estimate * w.n)) if w.n else 0
    return _iv(ivs["primary"], f"{k}/{w.n}")


def summarise(report: dict) -> dict:
    """A ``classification_report`` as plain data: each headline metric {value, low, high, method, count},
    the confusion matrix, recall by grade and by vendor (patient bootstrap or exact, the wider)."""
    cm = np.asarray(report["confusion_matrix"]).astype(int)
    (tn, fp), (fn, tp) = cm.tolist()
    counts = {"recall": f"{tp}/{tp + fn}", "specificity": f"{tn}/{tn + fp}", "precision": f"{tp}/{tp + fp}",
              "accuracy": f"{tp + tn}/{cm.sum()}"}
    out = {k: _iv(report["metrics"][k], counts.get(k)) for k in HEADLINE}
    out["confusion_matrix"] = {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    out["n"], out["n_positive"], out["n_patients"] = report["n"], report["n_positive"], report["n_groups"]
    out["threshold"] = _num(report["threshold"])
    out["recall_by_grade"] = {str(g): _sub(v) for g, v in report["recall_by_grade"].items()}
    out["by_vendor"] = {str(vd): {m: _sub(v) for m, v in d.items()} for vd, d in report["by_vendor"].items()}
    return out


def _report(level: _Level, threshold: float, n_boot: int, seed: int) -> dict | None:
    y = np.array(level.y, dtype=int)
    if y.size == 0 or len(np.unique(y)) < 2:
        return None  # metrics need both classes; the counts are still reported
    rep = classification_report(y, np.clip(np.array(level.p), 0.0, 1.0), threshold, groups=level.patient,
                                grades=np.array(level.grade), vendors=np.array(level.vendor), n_boot=n_boot,
                                seed=seed)
    return summarise(rep)


def clip_probability(clip, aggregate: str = "mean") -> float | None:
    """A clip's aggregate of its decided frames (the exam rule applied to one clip); None without any."""
    p = [f.probability for f in clip.frames if f.status == "decided"]
    return float({"mean": np.mean, "median": np.median, "max": np.max}[aggregate](p)) if p else None


def undetermined_scores(calcified: Sequence[int], threshold: float) -> np.ndarray:
    """Scores that make each undetermined exam an error at ``threshold``: a calcified exam scores 0 (missed),
    a normal one 1 (flagged). Also the worst possible ranking for AUROC."""
    y = np.asarray(calcified, dtype=int)
    return np.where(y == 1, 0.0, 1.0)


def grade_section(rows: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """The severity grade over decided exams with a true grade: QWK with its patient-bootstrap interval, the
    confusion matrix (:func:`echoavc.evaluate.grading.grade_report`); undetermined exams are counted beside."""
    from echoavc.evaluate.grading import grade_report

    have = [r for r in rows if r.get("grade") is not None and r.get("grade_predicted") is not None]
    out = {"exams_with_true_grade": sum(r.get("grade") is not None for r in rows), "exams_graded": len(have),
           "over": "decided exams with a true grade (undetermined exams have no grade)"}
    if have:
        k = max(len(r["grade_probabilities"]) for r in have)
        out.update(grade_report([r["grade"] for r in have], [r["grade_predicted"] for r in have],
                                [r["patient_id"] for r in have], n_classes=k, n_boot=n_boot, seed=seed))
    return out


def evaluate_screening(clips: Iterable, exam_truth: dict[str, ExamTruth], frame_threshold: float,
                       exam_threshold: float, aggregate: str = "mean",
                       frame_truth: dict[tuple[str, int], FrameTruth] | None = None,
                       failed: dict[str, list[str]] | None = None, missing: Iterable[str] = (), n_boot: int = 1000,
                       seed: int = 0, grade_pooling: dict | None = None) -> tuple[dict, list[dict]]:
    """(report, per-exam rows) for screening results against the truth.

    ``exam_truth``: exam id -> ExamTruth (exams without a label are counted and left out of the metrics).
    ``frame_truth``: (clip sha256, frame index) -> FrameTruth, when frames carry their own labels; else each
    decided frame takes its exam's label. ``failed``: exam id -> files of that exam the pipeline failed on
    (unreadable, truncated); an exam known only through failed files is undetermined, never dropped.
    ``missing``: labelled exams no input file was found for (or whose failed files could not be tied to them):
    undetermined as well. ``grade_pooling``: how exams pool their frames' grade probabilities (the bundle's).
    """
    from echoavc.screening.core import REJECTED_AS_OTHER_VIEW, judged_as_view
    from echoavc.screening.exams import exam_results

    clips = list(clips)
    failed = failed or {}
    exams = {e["exam_id"]: e for e in exam_results(clips, exam_threshold, aggregate, grade_pooling)}
    for exam_id, files in failed.items():
        if exam_id not in exams:
            exams[exam_id] = {"exam_id": exam_id, "sources": [], "n_frames": 0, "n_decided": 0,
                              "probability": None, "decision": "undetermined", "reason": "every file failed"}
    for exam_id in missing:
        if exam_id not in exams:
            exams[exam_id] = {"exam_id": exam_id, "sources": [], "n_frames": 0, "n_decided": 0, "probability": None,
                              "decision": "undetermined", "reason": "no input file found for this labelled exam"}
    labelled = sorted(e for e in exams if e in exam_truth and exam_truth[e].calcified is not None)
    unlabelled = sorted(set(exams) - set(labelled))

    # ---- frames
    frames = _Level()
    status_counts: dict[str, dict[str, int]] = {}
    other_judged = [0, 0]  # frames of other views the models judged, and those they kept out as not the valve view
    for c in clips:
        t = exam_truth.get(c.exam_id)
        for f in c.frames:
            ft = frame_truth.get((c.sha256, f.frame_index)) if frame_truth is not None else None
            role = ft.role if ft is not None else "exam frame"
            status_counts.setdefault(role, {}).setdefault(f.status, 0)
            status_counts[role][f.status] += 1
            if role != "valve" and judged_as_view(f.status, f.valve_score):
                other_judged[0] += 1
                other_judged[1] += f.status in REJECTED_AS_OTHER_VIEW
            if f.status != "decided" or t is None:
                continue
            y = ft.calcified if frame_truth is not None else t.calcified
            if frame_truth is not None and (ft is None or role != "valve"):
                continue  # a decided frame of another view has no valve label to score
            if y is not None:
                frames.add(y, f.probability, t)

    # ---- clips: each clip judged as a one-clip exam
    clip_level = _Level()
    clip_rows = {"clips": 0, "decided": 0}
    for c in clips:
        t = exam_truth.get(c.exam_id)
        if t is None or t.calcified is None:
            continue
        clip_rows["clips"] += 1
        p = clip_probability(c, aggregate)
        if p is not None:
            clip_rows["decided"] += 1
            clip_level.add(t.calcified, p, t)

    # ---- exams, two ways
    decided, as_errors = _Level(), _Level()
    rows = []
    for exam_id in labelled:
        e, t = exams[exam_id], exam_truth[exam_id]
        bad = failed.get(exam_id, [])
        rows.append({"exam_id": exam_id, "patient_id": t.patient_id, "calcified": t.calcified, "grade": t.grade,
                     "vendor": t.vendor, "decision": e["decision"], "probability": e["probability"],
                     "n_frames": e["n_frames"], "n_decided_frames": e["n_decided"], "n_files": len(e["sources"]),
                     "n_failed_files": len(bad), "reason": e.get("reason", "") if e["probability"] is None else "",
                     "correct": (None if e["probability"] is None
                                 else int((e["decision"] == "calcified") == bool(t.calcified)))})
        if e["probability"] is not None:
            decided.add(t.calcified, e["probability"], t)
            as_errors.add(t.calcified, e["probability"], t)
        else:
            as_errors.add(t.calcified, float(undetermined_scores([t.calcified], exam_threshold)[0]), t)

    graded = any("grade_probabilities" in e for e in exams.values())  # the bundle has a grade head
    if graded:
        for r in rows:
            e = exams[r["exam_id"]]
            r["grade_predicted"], r["grade_probabilities"] = e.get("grade"), e.get("grade_probabilities")

    n_und = sum(r["probability"] is None for r in rows)
    und_pos = sum(r["probability"] is None and r["calcified"] == 1 for r in rows)
    report = {
        "thresholds": {"frame": _num(frame_threshold), "exam": _num(exam_threshold), "exam_aggregate": aggregate},
        "counts": {"exams": len(rows), "exams_decided": len(rows) - n_und, "exams_undetermined": n_und,
                   "undetermined_calcified": und_pos, "undetermined_normal": n_und - und_pos,
                   "exams_unlabelled": len(unlabelled), "patients": len({r["patient_id"] for r in rows}),
                   "clips": clip_rows["clips"], "clips_decided": clip_rows["decided"],
                   "failed_files": sum(len(v) for v in failed.values()),
                   "exams_without_files": sum(1 for e in set(missing) if e in exam_truth),
                   "frames_scored": len(frames.y)},
        "coverage": {"exams": proportion(len(rows) - n_und, len(rows)) if rows else None,
                     "clips": proportion(clip_rows["decided"], clip_rows["clips"]) if clip_rows["clips"] else None},
        "frame_status": status_counts,
        "frame": _report(frames, frame_threshold, n_boot, seed),
        "clip": _report(clip_level, exam_threshold, n_boot, seed),
        "exam_decided": _report(decided, exam_threshold, n_boot, seed),
        "exam_undetermined_as_errors": _report(as_errors, exam_threshold, n_boot, seed),
        "undetermined": [{"exam_id": r["exam_id"], "calcified": r["calcified"], "reason": r["reason"],
                          "failed_files": failed.get(r["exam_id"], [])} for r in rows if r["probability"] is None],
    }
    if frame_truth is not None:
        valve = status_counts.get("valve", {})
        report["frame_coverage"] = {
            "valve_frames_decided": proportion(valve.get("decided", 0), sum(valve.values())) if valve else None,
            "other_view_frames_rejected": (proportion(other_judged[1], other_judged[0]) if other_judged[0] else None)}
    if graded:
        report["grade"] = grade_section(rows, n_boot, seed)
    report["frame_labels"] = ("each valve-view frame's own label" if frame_truth is not None
                              else "the exam's label (raw exams carry exam labels only)")
    report["_arrays"] = {"frame": frames, "exam": decided}  # for the plots; dropped before writing JSON
    return report, rows
