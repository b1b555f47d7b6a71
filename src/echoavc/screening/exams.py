"""Exam decisions: the aggregate of an exam's decided frames, with a bootstrap interval (statistics from
:mod:`echoavc.evaluate.intervals`), the decision at the exam threshold and the frame that drove it."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from echoavc.evaluate.intervals import bootstrap_by_group
from echoavc.screening.core import ClipResult

__all__ = ["exam_results"]


def exam_results(clips: Iterable[ClipResult], threshold: float, aggregate: str = "mean", n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> list[dict]:
    """One record per exam: the aggregate of its decided frames, a bootstrap interval (over clips when the
    exam has two or more, else over frames), the decision at ``threshold`` and the frame that drove it."""
    by_exam: dict[str, list[ClipResult]] = defaultdict(list)
    for c in clips:
        by_exam[c.exam_id].append(c)
    agg = {"mean": np.mean, "median": np.median, "max": np.max}[aggregate]
    rng = np.random.default_rng(seed)
    out = []
    for exam_id in sorted(by_exam):
        cl = sorted(by_exam[exam_id], key=lambda c: c.source)
        frames = [f for c in cl for f in c.frames]
        decided = [(ci, f) for ci, c in enumerate(cl) for f in c.frames if f.status == "decided"]
        rec = {"exam_id": exam_id, "sources": [c.source for c in cl], "n_frames": len(frames),
               "n_decided": len(decided), "threshold": float(threshold), "probability": None, "interval": None,
               "decision": "undetermined", "reason": "", "driving_frame": None, "overlay": ""}
        if not decided:
            statuses = {f.status for f in frames}
            rec["reason"] = ("no ultrasound cone found" if statuses == {"no_cone"} else
                             "no aortic-valve short-axis frame with a confident valve box")
            rec["overlay"] = next((c.overlay for c in cl if c.overlay), "")
            out.append(rec)
            continue
        p = np.array([f.probability for _, f in decided], dtype=np.float64)
        clip_of = np.array([ci for ci, _ in decided])
        value = float(agg(p))
        if p.size >= 2:
            # frames of one clip are not independent: resample clips when there are two or more, else frames
            iv = bootstrap_by_group(agg, clip_of if np.unique(clip_of).size >= 2 else None, p, n_boot=n_boot,
                                    level=level, seed=rng)
            lo, hi = iv.lo, iv.hi
        else:
            lo = hi = value
        rec["probability"] = round(value, 6)
        rec["interval"] = [round(float(lo), 6), round(float(hi), 6)]
        rec["decision"] = "calcified" if value >= threshold else "not calcified"
        ci, f = max(decided, key=lambda t: t[1].probability)
        rec["driving_frame"] = {"source": f.source, "frame_index": f.frame_index, "probability": f.probability}
        rec["overlay"] = cl[ci].overlay if cl[ci].best is not None else f.overlay
        if p.size == 1:
            rec["reason"] = "one decided frame: no interval over frames"
        out.append(rec)
    return out
