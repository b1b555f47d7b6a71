"""``echoavc review export``: the reviewer's answers as training data that ``echoavc dataset build`` reads.

Every reviewed exam is exported, confirmed ones too (exporting only corrections would enrich the training
data for the model's errors). Written to OUT (a folder, built beside and renamed, so never half written)::

    labels.csv   one row per reviewed exam: exam_id, patient_id (empty: the manifest gives it), calcified,
                 grade, status (confirmed | corrected), model_decision, reviewer, time
    boxes.json   COCO: one image per boxed frame, keyed by source_sha256 + frame_index (the ingest manifest's
                 join key); boxes in the ``original`` DICOM frame (default, through the clip's stored
                 StandardTransform) or the ``standard`` 640x640 frame
    boxes.csv    where each box came from: ``reviewer`` (drawn or moved) or ``model`` (the detector's box on a
                 decided frame the reviewer left as it was)
    views.csv    source_sha256, frame_index, view: psax_av for boxed frames, the view marked for wrong-view
                 frames (they become detector background frames)
    export.json  counts, the space, and the command that builds a dataset from it

A frame marked as the wrong view exports no box. With ``predict --key``, exam ids are the keyed study
pseudonyms ingest gives, so labels.csv joins the manifest as it is.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from echoavc.cone.transform import StandardTransform
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_folder, csv_text
from echoavc.review.results import load_results
from echoavc.review.store import DB_FILE, ReviewStore

__all__ = ["export_review", "LABEL_COLUMNS"]

LABEL_COLUMNS = ["exam_id", "patient_id", "calcified", "grade", "status", "model_decision", "reviewer", "time"]
VALVE_VIEW = "psax_av"


def _clip_box(box, w: float, h: float) -> list[float] | None:
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = max(0.0, min(x1, x2)), min(w, max(x1, x2))
    y1, y2 = max(0.0, min(y1, y2)), min(h, max(y1, y2))
    return [x1, y1, x2, y2] if x2 - x1 >= 1 and y2 - y1 >= 1 else None


def export_review(results: str | Path, out: str | Path, space: str = "original") -> dict:
    """Write the reviewed exams' labels and boxes to ``out``; returns the counts (also in export.json)."""
    if space not in ("original", "standard"):
        raise EchoAVCError(f"space must be original or standard, not {space!r}")
    results = Path(results)
    res = load_results(results)
    if not (results / DB_FILE).is_file():
        raise EchoAVCError("no review recorded here yet (run `echoavc review serve` first)", results / DB_FILE)
    store = ReviewStore(results)
    try:
        answers, boxes, views = store.exams(), store.boxes(), store.views()
    finally:
        store.close()
    labels = []
    for exam_id in sorted(answers):
        a = answers[exam_id]
        labels.append({"exam_id": exam_id, "patient_id": "", "calcified": int(a["decision"] == "calcified"),
                       "grade": "" if a["grade"] is None else a["grade"], "status": a["status"],
                       "model_decision": a["model_decision"] or "", "reviewer": a["reviewer"], "time": a["time"]})
    images, annotations, origins, view_rows = [], [], [], []
    for exam_id in sorted(answers):
        for clip in res.exam_clips(exam_id):
            rec = clip["record"]
            if rec is None:
                continue
            sha = clip["source_sha256"]
            t = StandardTransform(**rec["transform"])
            w, h = ((rec["original_cols"], rec["original_rows"]) if space == "original" else (t.size, t.size))
            for f in clip["frames"]:
                if not f["image"]:
                    continue
                key = (sha, f["frame_index"])
                if key in views:
                    view_rows.append({"source_sha256": sha, "frame_index": f["frame_index"], "view": views[key]})
                    continue
                if key in boxes:
                    std, origin = boxes[key], "reviewer"
                elif f.get("status") == "decided" and f.get("valve_box"):
                    std, origin = f["valve_box"], "model"
                else:
                    continue
                box = t.box_to_original(std) if space == "original" else std
                box = _clip_box(box, w, h)
                if box is None:
                    continue
                image_id = len(images) + 1
                images.append({"id": image_id, "file_name": f["image"], "width": int(w), "height": int(h),
                               "source_sha256": sha, "frame_index": int(f["frame_index"])})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": 1,
                                    "bbox": [round(box[0], 3), round(box[1], 3), round(box[2] - box[0], 3),
                                             round(box[3] - box[1], 3)],
                                    "area": round((box[2] - box[0]) * (box[3] - box[1]), 3), "iscrowd": 0})
                origins.append({"source_sha256": sha, "frame_index": f["frame_index"], "exam_id": exam_id,
                                "origin": origin, "x1": round(box[0], 3), "y1": round(box[1], 3),
                                "x2": round(box[2], 3), "y2": round(box[3], 3)})
                view_rows.append({"source_sha256": sha, "frame_index": f["frame_index"], "view": VALVE_VIEW})
    coco = {"info": {"description": "echoavc review export", "space": space},
            "images": images, "annotations": annotations, "categories": [{"id": 1, "name": "aortic_valve"}]}
    counts = {"exams": len(labels), "confirmed": sum(r["status"] == "confirmed" for r in labels),
              "corrected": sum(r["status"] == "corrected" for r in labels), "boxes": len(annotations),
              "boxes_by_reviewer": sum(o["origin"] == "reviewer" for o in origins),
              "wrong_view_frames": sum(v["view"] != VALVE_VIEW for v in view_rows)}
    meta = {"format": "echoavc-review-export/1", "results": str(results.resolve()), "space": space,
            "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"), "counts": counts,
            "build": f"echoavc dataset build --manifest INGEST/manifest.csv --boxes OUT/boxes.json --format coco "
                     f"--space {space} --labels OUT/labels.csv --views OUT/views.csv --out DATA"}
    with atomic_folder(out) as tmp:
        (tmp / "labels.csv").write_text(csv_text(LABEL_COLUMNS, labels))
        (tmp / "boxes.json").write_text(json.dumps(coco, indent=1) + "\n")
        (tmp / "boxes.csv").write_text(csv_text(["source_sha256", "frame_index", "exam_id", "origin", "x1", "y1",
                                                 "x2", "y2"], origins))
        (tmp / "views.csv").write_text(csv_text(["source_sha256", "frame_index", "view"], view_rows))
        (tmp / "export.json").write_text(json.dumps(meta, indent=1) + "\n")
    return counts
