"""Exam decisions: the aggregate of an exam's decided frames, the decision at the exam threshold, the frame that
drove it, and what the decision rests on: how many frames and clips, how far they spread and how many agree.

There is no per-exam confidence interval: an exam has one to five clips, and frames of one clip are not
independent, so a bootstrap over them is not a 95% interval (tests/screening/test_exam_spread.py measures how
often it would miss). The spread is reported as what it is, the range of the clip aggregates (of the decided
frames' probabilities when one clip is decided).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from echoavc.screening.core import ClipResult

__all__ = ["exam_results", "AGGREGATES"]

AGGREGATES = {"mean": np.mean, "median": np.median, "max": np.max}


def exam_results(clips: Iterable[ClipResult], threshold: float, aggregate: str = "mean",
                 grade_pooling: dict | None = None) -> list[dict]:
    """One record per exam: the aggregate of its decided frames and the decision at ``threshold``; the frame
    that drove it; ``n_clips``/``n_clips_decided`` and ``n_frames``/``n_decided``; ``clip_probabilities`` (each
    decided clip's own aggregate); ``spread`` [low, high] with ``spread_of`` ("clips" when two or more clips are
    decided, else "frames"; a range, not a confidence interval); ``clips_agreeing`` and ``frames_agreeing``
    ("k/n": decided clips, and decided frames, on the same side of ``threshold`` as the exam). With a grade head,
    the exam's grade pools its decided frames' grade probabilities by ``grade_pooling`` (the bundle's
    ``grade_pooling``; None: their arithmetic mean)."""
    by_exam: dict[str, list[ClipResult]] = defaultdict(list)
    for c in clips:
        by_exam[c.exam_id].append(c)
    agg = AGGREGATES[aggregate]
    out = []
    for exam_id in sorted(by_exam):
        cl = sorted(by_exam[exam_id], key=lambda c: c.source)
        frames = [f for c in cl for f in c.frames]
        decided = [(ci, f) for ci, c in enumerate(cl) for f in c.frames if f.status == "decided"]
        rec = {"exam_id": exam_id, "sources": [c.source for c in cl], "n_frames": len(frames),
               "n_decided": len(decided), "n_clips": len(cl), "n_clips_decided": 0, "threshold": float(threshold),
               "probability": None, "clip_probabilities": [], "spread": None, "spread_of": "",
               "clips_agreeing": "", "frames_agreeing": "", "decision": "undetermined", "reason": "",
               "driving_frame": None, "overlay": ""}
        if not decided:
            statuses = {f.status for f in frames}
            rec["reason"] = ("no ultrasound cone found" if statuses == {"no_cone"} else
                             _not_screened_reason(cl) or "no aortic-valve short-axis frame with a confident valve box")
            rec["overlay"] = next((c.overlay for c in cl if c.overlay), "")
            out.append(rec)
            continue
        p = np.array([f.probability for _, f in decided], dtype=np.float64)
        clip_of = np.array([ci for ci, _ in decided])
        value = float(agg(p))
        positive = value >= threshold
        per_clip = [float(agg(p[clip_of == ci])) for ci in np.unique(clip_of)]
        spread_over = np.array(per_clip) if len(per_clip) >= 2 else p
        rec["probability"] = round(value, 6)
        rec["n_clips_decided"] = len(per_clip)
        rec["clip_probabilities"] = [round(v, 6) for v in per_clip]
        rec["spread"] = [round(float(spread_over.min()), 6), round(float(spread_over.max()), 6)]
        rec["spread_of"] = "clips" if len(per_clip) >= 2 else "frames"
        rec["clips_agreeing"] = f"{sum((v >= threshold) == positive for v in per_clip)}/{len(per_clip)}"
        rec["frames_agreeing"] = f"{int(((p >= threshold) == positive).sum())}/{p.size}"
        rec["decision"] = "calcified" if positive else "not calcified"
        ci, f = max(decided, key=lambda t: t[1].probability)
        rec["driving_frame"] = {"source": f.source, "frame_index": f.frame_index, "probability": f.probability}
        rec["overlay"] = cl[ci].overlay if cl[ci].best is not None else f.overlay
        if p.size == 1:
            rec["reason"] = "one decided frame: the decision rests on it alone"
        rec.update(_exam_grade([f for _, f in decided], grade_pooling))
        out.append(rec)
    return out


def _exam_grade(decided: list, pooling: dict | None = None) -> dict:
    """The severity grade of an exam from the same decided frames as its decision (nothing without a grade head):
    ``grade`` (the median class of the frames' pooled class probabilities), ``grade_probabilities`` and the
    frames it rests on (``grade_frames``: how many; ``grade_rests_on``: which)."""
    probs = [f.grade_probabilities for f in decided if f.grade_probabilities is not None]
    if not probs:
        return {}
    from echoavc.classifier.grade import exam_grade

    grade, mean = exam_grade(probs, pooling)
    return {"grade": grade, "grade_probabilities": [round(float(v), 6) for v in mean], "grade_frames": len(probs),
            "grade_rests_on": [{"source": f.source, "frame_index": f.frame_index} for f in decided
                               if f.grade_probabilities is not None]}


def _not_screened_reason(clips: list[ClipResult]) -> str:
    """Why no clip of an exam was screened, when none was (their views or the header; echoavc.views)."""
    views = [c.view for c in clips]
    if not views or any(v is None or not v.get("reason") for v in views):
        return ""
    return "no clip taken as psax_av (" + "; ".join(sorted({v["reason"] for v in views})) + ")"
