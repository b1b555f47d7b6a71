"""Clip view accuracy with its 95% interval, and the confusion matrix (table and picture).

A clip's view is the mean of its frames' class probabilities (:func:`echoavc.views.model.clip_view`, the rule
screening uses); its truth is its frames' view class. Clips of one patient are not independent, so the
interval is the one ``docs/evaluation.md`` gives proportions: the wider of a patient bootstrap (clips resampled
by patient, 2000 draws) and Clopper-Pearson; both are kept in the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from echoavc.evaluate.intervals import bootstrap_by_group, proportion_intervals
from echoavc.files import atomic_write_text, atomic_write_with, csv_text
from echoavc.views.classes import SCREENED_VIEW, VIEW_CLASSES
from echoavc.views.data import ViewFrames
from echoavc.views.model import clip_view

__all__ = ["clip_predictions", "view_report", "write_view_report", "format_view_report", "confusion_png"]


def clip_predictions(frame_probabilities: np.ndarray, frames: ViewFrames) -> list[dict]:
    """One record per clip: clip, patient, true class, predicted class and its probability."""
    out = []
    for clip in sorted(set(frames.clips)):
        m = frames.clips == clip
        cv = clip_view(frame_probabilities[m])
        truth = VIEW_CLASSES[int(np.bincount(frames.labels[m]).argmax())]
        out.append({"clip": clip, "patient": str(frames.patients[m][0]), "view": truth, "predicted": cv.view,
                    "probability": round(cv.probability, 4), "frames": int(m.sum())})
    return out


def _plain(iv) -> dict:
    d = {"value": _num(iv.estimate), "low": _num(iv.lo), "high": _num(iv.hi), "method": iv.method, "n": iv.n}
    if iv.note:
        d["no_interval"] = iv.note
    return d


def _num(v):
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def view_report(clips: list[dict], n_boot: int = 2000, label: str = "") -> dict:
    """Clip accuracy (95% interval), psax_av recall and specificity (taken / not taken for screening), the
    confusion matrix (rows: truth, columns: predicted, VIEW_CLASSES order) and counts. A clip whose
    ``predicted`` is None is one the pipeline could not read (a held-out file ingest failed on): it counts as
    wrong, is never taken for screening, and is listed per true view in ``unread_per_view``, outside the matrix."""
    truth = np.array([c["view"] for c in clips])
    pred = np.array([c["predicted"] or "" for c in clips])
    groups = np.array([c["patient"] for c in clips])
    ok = (truth == pred).astype(float)
    k, n = int(ok.sum()), len(ok)
    boot = bootstrap_by_group(lambda w, y: (w @ y) / w.sum(axis=1), groups, ok, n_boot=n_boot, vectorized=True) \
        if n else None
    ivs = proportion_intervals(k, n, bootstrap=boot) if n else {}
    cm = np.zeros((len(VIEW_CLASSES), len(VIEW_CLASSES)), int)
    for t, p in zip(truth, pred):
        if p:
            cm[VIEW_CLASSES.index(t), VIEW_CLASSES.index(p)] += 1
    av_t, av_p = truth == SCREENED_VIEW, pred == SCREENED_VIEW
    rep = {
        "label": label,
        "clip_accuracy": _plain(ivs["primary"]) if n else None,
        "clip_accuracy_intervals": {m: _plain(iv) for m, iv in ivs.items() if m != "primary"},
        "interval_rule": "the wider of a patient bootstrap (2000 resamples of patients) and Clopper-Pearson",
        "psax_av_recall": f"{int((av_t & av_p).sum())}/{int(av_t.sum())}",
        "other_views_taken_as_psax_av": f"{int((~av_t & av_p).sum())}/{int((~av_t).sum())}",
        "classes": list(VIEW_CLASSES),
        "confusion_matrix": cm.tolist(),
        "counts": {"clips": n, "patients": len(set(groups)), "frames": int(sum(c["frames"] for c in clips)),
                   "clips_per_view": {v: int((truth == v).sum()) for v in VIEW_CLASSES}},
        "unread_per_view": {v: int(((truth == v) & (pred == "")).sum()) for v in VIEW_CLASSES},
    }
    return rep


def _unread_text(rep: dict) -> str:
    """The clips not read, per true view ("psax_av 1, plax 2"); "" when every clip was read."""
    return ", ".join(f"{v} {n}" for v, n in rep.get("unread_per_view", {}).items() if n)


def format_view_report(rep: dict) -> str:
    from echoavc.evaluate.intervals import format_plain

    c = rep["counts"]
    acc = rep["clip_accuracy"]
    lines = [f"clip view accuracy {format_plain(acc)} (95%; {rep['interval_rule']}) on {c['clips']} clips of "
             f"{c['patients']} patients ({c['frames']} frames){' - ' + rep['label'] if rep.get('label') else ''}",
             f"psax_av clips taken: {rep['psax_av_recall']}; other clips taken as psax_av: "
             f"{rep['other_views_taken_as_psax_av']}",
             "confusion (rows truth, columns predicted): " + " ".join(VIEW_CLASSES)]
    unread = rep.get("unread_per_view", {})
    if sum(unread.values()):
        lines.insert(2, f"clips the pipeline could not read (counted wrong): {sum(unread.values())} "
                     f"({_unread_text(rep)})")
    for name, row in zip(VIEW_CLASSES, rep["confusion_matrix"]):
        lines.append(f"  {name:9s} " + " ".join(f"{v:5d}" for v in row))
    return "\n".join(lines)


def confusion_png(cm, path: Path, title: str = "") -> Path:
    """The confusion matrix as a picture (counts; rows truth, columns predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=110)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(VIEW_CLASSES)), VIEW_CLASSES, rotation=30)
    ax.set_yticks(range(len(VIEW_CLASSES)), VIEW_CLASSES)
    ax.set_xlabel("predicted view")
    ax.set_ylabel("true view")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def write_view_report(rep: dict, clips: list[dict], out: str | Path) -> dict:
    """``view_report.json``, ``view_clips.csv`` (one row per clip), ``view_confusion.csv`` and ``.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "view_report.json", json.dumps(rep, indent=1) + "\n")
    atomic_write_text(out / "view_clips.csv", csv_text(["clip", "patient", "view", "predicted", "probability",
                                                         "frames"], clips))
    rows = [{"true_view": v, **dict(zip(VIEW_CLASSES, r))} for v, r in zip(VIEW_CLASSES, rep["confusion_matrix"])]
    atomic_write_text(out / "view_confusion.csv", csv_text(["true_view", *VIEW_CLASSES], rows))
    unread = _unread_text(rep)
    title = rep.get("label", "") + (f"\nnot read (counted wrong, not shown): {unread}" if unread else "")
    confusion_png(rep["confusion_matrix"], out / "view_confusion.png", title)
    return {k: str(out / k) for k in ("view_report.json", "view_clips.csv", "view_confusion.csv",
                                      "view_confusion.png")}
