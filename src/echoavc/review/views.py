"""What the two pages show, computed from the results and the answers (plain dicts for the templates).

Blinded mode: an exam's model decision, probability, grade, overlays (their labels name the call) and
probability plot are left out of the page until the reviewer has recorded an answer for that exam.
"""

from __future__ import annotations

import json
import math
from urllib.parse import quote

from echoavc.review.results import Results

__all__ = ["list_context", "exam_page_context", "probability_plot", "file_url", "short_path"]

PLOT_W, PLOT_H, PLOT_PAD = 360, 80, 6


def file_url(rel: str) -> str:
    return "/files/" + quote(rel, safe="/") if rel else ""


def short_path(path: str, parts: int = 3) -> str:
    """The last ``parts`` components of a path, with an ellipsis when some were left off (the page shows the
    whole path on hover)."""
    p = str(path).replace("\\", "/").split("/")
    return str(path) if len(p) <= parts else "\u2026/" + "/".join(p[-parts:])


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _first_image(res: Results, exam_id: str) -> str:
    for clip in res.exam_clips(exam_id):
        d = [f for f in clip["frames"] if f["image"]]
        if d:
            return d[len(d) // 2]["image"]
    return ""


def list_context(res: Results, answers: dict[str, dict], blinded: bool) -> dict:
    rows = []
    for e in res.exams:
        ans = answers.get(e["exam_id"])
        hide = blinded and ans is None
        n, k = e.get("n_frames") or 0, e.get("n_decided") or 0
        thumb = _first_image(res, e["exam_id"]) if hide else (e.get("overlay") or _first_image(res, e["exam_id"]))
        rows.append({
            "exam_id": e["exam_id"], "url": "/exam/" + quote(e["exam_id"], safe=""),
            "decision": "" if hide else e.get("decision", ""),
            "probability": None if hide else _num(e.get("probability")),
            "grade": None if hide else e.get("grade"),
            "coverage": (k / n) if n else None, "coverage_text": f"{k}/{n}",
            "thumb": file_url(thumb), "status": ans["status"] if ans else "unreviewed",
            "answer": ans["decision"] if ans else "", "answer_grade": ans["grade"] if ans else None,
            "reviewer": ans["reviewer"] if ans else "", "hidden": hide,
        })
    counts = {s: sum(r["status"] == s for r in rows) for s in ("unreviewed", "confirmed", "corrected")}
    return {"rows": rows, "counts": counts, "n_clips_kept": len(res.clips),
            "model_name": (res.model or {}).get("name", "")}


def probability_plot(frames: list[dict], threshold: float | None) -> dict:
    """A small SVG line of each frame's P(calcified) over frame index (undecided frames as gaps)."""
    idx = [f["frame_index"] for f in frames]
    if not idx:
        return {"w": PLOT_W, "h": PLOT_H, "lines": [], "dots": [], "threshold_y": None, "xs": {}}
    lo, hi = min(idx), max(idx)
    span = max(hi - lo, 1)

    def x(i):
        return round(PLOT_PAD + (i - lo) / span * (PLOT_W - 2 * PLOT_PAD), 1)

    def y(p):
        return round(PLOT_H - PLOT_PAD - p * (PLOT_H - 2 * PLOT_PAD), 1)

    lines, run, dots = [], [], []
    for f in frames:
        p = _num(f.get("probability"))
        if p is None or f.get("status") not in ("decided", "low_confidence"):
            if len(run) > 1:
                lines.append(" ".join(run))
            run = []
            continue
        run.append(f"{x(f['frame_index'])},{y(p)}")
        dots.append({"x": x(f["frame_index"]), "y": y(p), "decided": f.get("status") == "decided",
                     "title": f"frame {f['frame_index']}: P={p:.2f}"})
    if len(run) > 1:
        lines.append(" ".join(run))
    t = _num(threshold)
    return {"w": PLOT_W, "h": PLOT_H, "lines": lines, "dots": dots, "threshold_y": y(t) if t is not None else None,
            "xs": {f["frame_index"]: x(f["frame_index"]) for f in frames}}


def exam_page_context(res: Results, exam_id: str, answers: dict, boxes: dict, views: dict, blinded: bool) -> dict:
    e = res.exam(exam_id)
    ans = answers.get(exam_id)
    hide = blinded and ans is None
    ids = [x["exam_id"] for x in res.exams]
    i = ids.index(exam_id)
    drv = e.get("driving_frame") or {}
    clips = []
    for c in res.exam_clips(exam_id):
        sha = c["source_sha256"]
        frames = []
        for f in c["frames"]:
            key = (sha, f["frame_index"])
            frames.append({
                "frame_index": f["frame_index"], "image": file_url(f["image"]),
                # the overlay PNG carries the call (and on the driving frame the heat map): hidden when blinded
                "overlay": "" if hide else file_url(f.get("overlay") or ""),
                "status": f.get("status", ""), "status_text": f.get("status_text", ""),
                "probability": None if hide else _num(f.get("probability")),
                "model_box": f.get("valve_box"), "box": boxes.get(key), "wrong_view": views.get(key),
                "view": f.get("view") or "", "phase": f.get("phase") or f.get("cardiac_phase") or "",
                "driving": (not hide) and drv.get("source") == c["source"] and drv.get("frame_index") == f["frame_index"],
            })
        start = next((k for k, f in enumerate(frames) if f["driving"]), len(frames) // 2 if frames else 0)
        clips.append({"source": c["source"], "sha": sha, "frames": frames, "kept": any(f["image"] for f in frames),
                      "start": start, "plot": None if hide else probability_plot(c["frames"], e.get("threshold")),
                      "data": json.dumps({"sha": sha, "frames": frames, "start": start})})
    driving = None
    if not hide and drv:
        driving = {"source": drv.get("source"), "frame_index": drv.get("frame_index"),
                   "overlay": file_url(e.get("overlay") or ""), "heat_map": bool(e.get("heat_map"))}
    return {"exam": {"exam_id": exam_id, "decision": "" if hide else e.get("decision", ""),
                     "probability": None if hide else _num(e.get("probability")),
                     "spread": None if hide else e.get("spread"), "threshold": None if hide else e.get("threshold"),
                     "grade": None if hide else e.get("grade"), "reason": "" if hide else e.get("reason", ""),
                     "n_frames": e.get("n_frames"), "n_decided": e.get("n_decided")},
            "hidden": hide, "answer": ans, "clips": clips, "driving": driving, "size": res.standard_size,
            "prev_url": "/exam/" + quote(ids[i - 1], safe="") if i > 0 else "",
            "next_url": "/exam/" + quote(ids[i + 1], safe="") if i + 1 < len(ids) else "",
            "position": f"{i + 1} of {len(ids)}"}
