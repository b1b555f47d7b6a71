"""The files of an evaluation: evaluation.json, evaluation.md, exams.csv, reliability diagrams and ROC curves
with the operating point (PNG). Written atomically, one file at a time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from echoavc.evaluate.calibration import reliability_diagram
from echoavc.evaluate.intervals import format_plain
from echoavc.files import atomic_write_text, atomic_write_with, csv_text

__all__ = ["write_evaluation", "roc_diagram", "evaluation_markdown", "EXAM_COLUMNS"]

EXAM_COLUMNS = ["exam_id", "patient_id", "calcified", "grade", "vendor", "decision", "probability", "correct",
                "n_files", "n_failed_files", "n_frames", "n_decided_frames", "reason"]


def roc_diagram(y_true, p_score, threshold: float, path, title: str = "ROC") -> None:
    """The ROC curve (scikit-learn's) with the operating point at ``threshold`` marked (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    y, p = np.asarray(y_true, dtype=int), np.asarray(p_score, dtype=float)
    fpr, tpr, _ = roc_curve(y, p)
    pred = p >= threshold
    op = ((~y.astype(bool) & pred).sum() / max((y == 0).sum(), 1), (y.astype(bool) & pred).sum() / max(y.sum(), 1))
    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.plot(fpr, tpr, color="tab:blue", label=f"AUROC {roc_auc_score(y, p):.3f} (n = {len(y)})")
    ax.plot([op[0]], [op[1]], "o", color="tab:red", label=f"threshold {threshold:.3f}: recall {op[1]:.2f}, "
            f"specificity {1 - op[0]:.2f}")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("recall (sensitivity)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


def _fmt(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    return format_plain(m) + (f" ({m['count']})" if m.get("count") else "")


def evaluation_markdown(r: dict) -> str:
    d, c = r.get("data", {}), r["counts"]
    lines = ["# Evaluation of the whole screening path", "",
             f"Model: `{r['model']['bundle']}`; data: {d.get('label')}"
             + (f" (part `{d['part']}`)" if d.get("part") else "") + ".", ""]
    if d.get("warning"):
        lines += [f"**Warning:** {d['warning']}", ""]
    t = r["thresholds"]
    lines += [f"Thresholds (the bundle's own, chosen on validation): frame {t['frame']}, exam {t['exam']} "
              f"({t['exam_aggregate']} of an exam's decided frames). Intervals: 95%, the wider of a patient "
              "bootstrap and Clopper-Pearson for proportions, the patient bootstrap for the rest.", "",
              "## Exams", "",
              f"{c['exams']} labelled exams of {c['patients']} patients; coverage (exams decided / exams): "
              f"{_fmt((r.get('coverage') or {}).get('exams'))}; {c['exams_undetermined']} undetermined "
              f"({c['undetermined_calcified']} calcified, {c['undetermined_normal']} normal); "
              f"{c['failed_files']} file(s) failed.", "",
              "| metric | over decided exams | undetermined counted as errors |", "|---|---|---|"]
    a, b = r.get("exam_decided") or {}, r.get("exam_undetermined_as_errors") or {}
    for k in ("auroc", "recall", "specificity", "accuracy", "balanced_accuracy", "precision"):
        lines.append(f"| {k} | {_fmt(a.get(k))} | {_fmt(b.get(k))} |")
    lines += ["", "Undetermined exams counted as errors: a calcified one as missed, a normal one as flagged "
              "(for AUROC, ranked worst).", ""]
    if a.get("recall_by_grade"):
        lines += ["Recall by grade (decided exams): " + "; ".join(
            f"grade {g}: {_fmt(v)}" for g, v in a["recall_by_grade"].items()), ""]
    if a.get("by_vendor"):
        lines += ["By vendor (decided exams): " + "; ".join(
            f"{v}: " + ", ".join(f"{m} {_fmt(x)}" for m, x in d_.items()) for v, d_ in a["by_vendor"].items()), ""]
    for level, title in (("clip", "Clips (each judged as a one-clip exam)"), ("frame", "Frames")):
        m = r.get(level)
        lines += [f"## {title}", ""]
        if m is None:
            lines += ["n/a (needs both classes)", ""]
            continue
        lines += [", ".join(f"{k} {_fmt(m.get(k))}" for k in ("auroc", "recall", "specificity", "accuracy"))
                  + f"; n = {m['n']} ({m['n_patients']} patients)", ""]
    if level == "frame" and r.get("frame_coverage"):
        fc = r["frame_coverage"]
        lines += [f"Valve-view frames decided {_fmt(fc.get('valve_frames_decided'))}; other-view frames "
                  f"rejected {_fmt(fc.get('other_view_frames_rejected'))}. Frame labels: {r['frame_labels']}.", ""]
    if r.get("undetermined"):
        lines += ["## Undetermined exams", ""] + [
            f"- {u['exam_id']} (calcified {u['calcified']}): {u['reason']}"
            + (f"; failed files: {', '.join(Path(x).name for x in u['failed_files'])}" if u["failed_files"] else "")
            for u in r["undetermined"]] + [""]
    if r.get("grade") is not None:
        lines += grade_markdown(r["grade"])
    lines += ["Figures: reliability_exam.png, roc_exam.png, reliability_frame.png, roc_frame.png (where both "
              "classes occur).", ""]
    return "\n".join(lines)


def grade_markdown(g: dict) -> list[str]:
    from echoavc.evaluate.grading import confusion_markdown

    lines = ["## Severity grade", ""]
    if not g.get("exams_graded"):
        return lines + [f"No graded exam ({g['exams_with_true_grade']} with a true grade).", ""]
    q = g["qwk"]
    lines += [f"Over {g['over']}: {g['exams_graded']} exams of {q['n_patients']} patients. Quadratic weighted kappa "
              f"{_fmt(q)} (95% patient bootstrap, {q['n_boot_valid']} valid resamples); exact agreement "
              f"{g['accuracy']:.2f}. The grade is the median class of the mean class probabilities of the exam's "
              "decided frames (the frames its decision rests on); recall of \"calcified\" by true grade is above.",
              "", confusion_markdown(g), "", "Figure: confusion_grade.png.", ""]
    return lines


def write_evaluation(out, report: dict) -> dict:
    """Write the evaluation files into ``out``; returns {name: path}. Drops the report's in-memory arrays."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = report.pop("_arrays", {})
    files = {}
    for level, lv in arrays.items():
        y, p = np.array(lv.y, dtype=int), np.array(lv.p, dtype=float)
        if y.size and len(np.unique(y)) == 2:
            thr = report["thresholds"]["exam" if level == "exam" else "frame"]
            reliability_diagram(y, np.clip(p, 0, 1), out / f"reliability_{level}.png",
                                title=f"{level}s: reliability (n = {len(y)})")
            thr = float("inf") if thr is None else float(thr)  # None: an infinite threshold (calls nothing)
            roc_diagram(y, p, thr, out / f"roc_{level}.png", title=f"{level}s: ROC and operating point")
            files[f"reliability_{level}"] = str(out / f"reliability_{level}.png")
            files[f"roc_{level}"] = str(out / f"roc_{level}.png")
    rows = report.get("rows", [])
    columns = EXAM_COLUMNS
    if report.get("grade") is not None:  # with a grade head only: without one, exams.csv is as it was
        from echoavc.evaluate.grading import confusion_diagram

        k = max([len(r.get("grade_probabilities") or []) for r in rows] + [0])
        probs = [f"grade_p{i}" for i in range(k)]
        columns = EXAM_COLUMNS + ["grade_predicted", *probs]
        rows = [{**r, **dict(zip(probs, r.get("grade_probabilities") or []))} for r in rows]
        if report["grade"].get("exams_graded"):
            confusion_diagram(report["grade"], out / "confusion_grade.png",
                              title=f"grade: confusion matrix ({report.get('data', {}).get('label', '')})"[:80])
            files["confusion_grade"] = str(out / "confusion_grade.png")
    atomic_write_text(out / "exams.csv", csv_text(columns, [{k: ("" if r.get(k) is None else r.get(k))
                                                             for k in columns} for r in rows]))
    report["files"] = {**files, "exams": str(out / "exams.csv"), "json": str(out / "evaluation.json"),
                       "markdown": str(out / "evaluation.md")}
    atomic_write_text(out / "evaluation.md", evaluation_markdown(report))
    atomic_write_text(out / "evaluation.json", json.dumps(report, indent=1, default=str) + "\n")
    return report["files"]
