"""Severity grade metrics: quadratic weighted kappa with a patient-bootstrap interval, the confusion matrix
(Markdown and PNG). Recall of "calcified" by true grade is ``classification_report(grades=...)``'s.

Quadratic weighted kappa (scikit-learn's ``cohen_kappa_score(weights="quadratic")``) is agreement beyond chance
where a disagreement costs the square of its distance in grades: calling a severe valve mild costs nine times
calling it moderate. The interval resamples patients (:func:`echoavc.evaluate.intervals.bootstrap_by_group`),
because exams of one patient are not independent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echoavc.evaluate.intervals import Interval, bootstrap_by_group

__all__ = ["quadratic_kappa", "grade_report", "confusion_markdown", "confusion_diagram", "GRADE_NAMES"]

GRADE_NAMES = {0: "none", 1: "mild", 2: "moderate", 3: "severe"}


def quadratic_kappa(y_true, y_pred, labels=None) -> float:
    """Quadratic weighted kappa; NaN when it is undefined (one grade only, in truth and predictions)."""
    from sklearn.metrics import cohen_kappa_score

    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if len(np.unique(np.r_[y_true, y_pred])) < 2:
        return float("nan")
    return float(cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=labels))


def grade_report(y_true, y_pred, groups, n_classes: int | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """QWK with its 95% patient-bootstrap interval, accuracy, the confusion matrix (rows: true grade, columns:
    predicted), per true grade the share called exactly and within one grade. JSON-able."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    # a model may know fewer grades than the truth holds (none of grade 3 in its training data)
    k = max(int(n_classes or 0), int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)
    labels = list(range(k))
    iv: Interval = bootstrap_by_group(lambda t, p: quadratic_kappa(t, p, labels), list(groups), y_true, y_pred,
                                      n_boot=n_boot, seed=seed)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    per = {str(g): {"n": int((y_true == g).sum()),
                    "exact": _share((y_pred == g)[y_true == g]),
                    "within_one": _share((np.abs(y_pred - g) <= 1)[y_true == g])} for g in labels}
    return {"qwk": {"value": _num(iv.estimate), "low": _num(iv.lo), "high": _num(iv.hi), "method": iv.method,
                    "n_patients": iv.n, "n_boot_valid": iv.n_boot_valid},
            "accuracy": _share(y_true == y_pred), "n": int(len(y_true)), "classes": labels,
            "confusion_matrix": cm.tolist(), "by_true_grade": per}


def _share(x) -> float | None:
    x = np.asarray(x)
    return round(float(x.mean()), 4) if x.size else None


def _num(v):
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def confusion_markdown(rep: dict) -> str:
    """The confusion matrix as a Markdown table (rows: true grade; columns: predicted grade)."""
    labels = rep["classes"]
    name = lambda g: f"{g} ({GRADE_NAMES[g]})" if g in GRADE_NAMES else str(g)  # noqa: E731
    lines = ["| true \\ predicted | " + " | ".join(name(g) for g in labels) + " | n |",
             "|---|" + "---|" * (len(labels) + 1)]
    for g, row in zip(labels, rep["confusion_matrix"]):
        lines.append(f"| {name(g)} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |")
    return "\n".join(lines)


def confusion_diagram(rep: dict, path, title: str = "grade: confusion matrix") -> Path:
    """The confusion matrix as a PNG (counts in the cells; rows: true grade)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from echoavc.files import atomic_write_with

    cm = np.asarray(rep["confusion_matrix"])
    labels = rep["classes"]
    fig = Figure(figsize=(4.2, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), [str(g) for g in labels])
    ax.set_yticks(range(len(labels)), [str(g) for g in labels])
    ax.set_xlabel("predicted grade")
    ax.set_ylabel("true grade")
    q = rep["qwk"]
    sub = f"QWK {q['value']:.2f} [{q['low']:.2f}, {q['high']:.2f}]" if q.get("low") is not None else "QWK n/a"
    ax.set_title(f"{title}\n{sub}, n = {rep['n']}", fontsize=9)
    fig.tight_layout()
    return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
