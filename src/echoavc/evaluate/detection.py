"""Valve detection metrics: one aortic valve per image, as in the paper.

Threshold metrics follow the pipeline: it crops the highest-scoring box above the confidence threshold,
so each image yields at most one prediction. That box is a true positive when its IoU with the true
box is at least ``iou_threshold``; a box on a frame without a valve, or a box beside the valve, is a
false detection; a valve without a correct top box is a miss. (Ultralytics' box precision counts every
box above the threshold instead, so it is lower when a detector emits duplicates.)

Ranking metrics (mAP50, mAP50-95) use every predicted box at every score, COCO style.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from echoavc.evaluate.intervals import (
    MIN_PATIENTS_PER_CLASS,
    Interval,
    no_interval,
    percentile_interval,
    proportion_intervals,
    resample_groups,
    too_few_units,
)

__all__ = [
    "DetectionRecord",
    "TopBoxMatch",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_POINTS",
    "iou_many",
    "match_top_box",
    "average_precision",
    "detection_report",
]

#: IoU thresholds of mAP50-95: 0.50, 0.55, ..., 0.95 (COCO's own linspace, float quirks included).
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
#: The 101 recall points of COCO's interpolated AP.
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1)


@dataclass(frozen=True)
class DetectionRecord:
    """One image: its id, patient, true valve box (None on a frame of another view) and predictions.

    Boxes are (x1, y1, x2, y2) in one coordinate space; ``pred_boxes`` is (k, 4), ``pred_scores`` (k,).
    """

    image_id: str
    patient: str
    true_box: np.ndarray | None
    pred_boxes: np.ndarray
    pred_scores: np.ndarray

    @classmethod
    def coerce(cls, obj) -> "DetectionRecord":
        """A record from a ``DetectionRecord`` or a mapping with the same keys."""
        if isinstance(obj, cls):
            rec = obj
        elif isinstance(obj, Mapping):
            rec = cls(obj["image_id"], obj["patient"], obj.get("true_box"), obj.get("pred_boxes", ()),
                      obj.get("pred_scores", ()))
        else:
            raise TypeError(f"expected a DetectionRecord or a mapping, got {type(obj).__name__}")
        boxes = np.asarray(rec.pred_boxes, dtype=float).reshape(-1, 4)
        scores = np.asarray(rec.pred_scores, dtype=float).reshape(-1)
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(f"image {rec.image_id}: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
        true_box = None if rec.true_box is None else np.asarray(rec.true_box, dtype=float).reshape(4)
        return cls(rec.image_id, rec.patient, true_box, boxes, scores)


@dataclass(frozen=True)
class TopBoxMatch:
    """The highest-scoring box of an image and how it meets the true box.

    ``index`` is None when there is no box; ``iou`` is NaN without a box or a true box.
    """

    index: int | None
    score: float
    iou: float
    hit: bool


def iou_many(boxes, box) -> np.ndarray:
    """IoU of each (x1, y1, x2, y2) row of ``boxes`` with one ``box`` (0 where the union is empty)."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    t = np.asarray(box, dtype=float).reshape(4)
    iw = np.clip(np.minimum(b[:, 2], t[2]) - np.maximum(b[:, 0], t[0]), 0, None)
    ih = np.clip(np.minimum(b[:, 3], t[3]) - np.maximum(b[:, 1], t[1]), 0, None)
    inter = iw * ih
    union = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    out = np.zeros(b.shape[0])
    np.divide(inter, union, out=out, where=union > 0)
    return out


def match_top_box(pred_boxes, pred_scores, true_box, iou_threshold: float = 0.5) -> TopBoxMatch:
    """Match the top-scoring predicted box (the first on tied scores) to the one true box.

    A hit needs IoU >= ``iou_threshold``; with ``true_box=None`` (a frame without a valve) any box is a
    false detection, so ``hit`` is False.
    """
    boxes = np.asarray(pred_boxes, dtype=float).reshape(-1, 4)
    scores = np.asarray(pred_scores, dtype=float).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError("one score per box")
    if scores.size == 0:
        return TopBoxMatch(None, math.nan, math.nan, False)
    i = int(np.argmax(scores))
    if true_box is None:
        return TopBoxMatch(i, float(scores[i]), math.nan, False)
    iou = float(iou_many(boxes[i], true_box)[0])
    return TopBoxMatch(i, float(scores[i]), iou, iou >= iou_threshold)


def _first_match_flags(records: list[DetectionRecord], thresholds: np.ndarray):
    """Detections in COCO order with their TP flags per IoU threshold.

    Returns ``(image_index (D,), scores (D,), tp (T, D))``, sorted by descending score (stable, images
    in record order, boxes in score order within an image). At each threshold the first box in score
    order with IoU >= t takes the image's one true box; every other box is a false positive.
    """
    img, scr, flags = [], [], []
    for i, r in enumerate(records):
        k = r.pred_scores.size
        if k == 0:
            continue
        order = np.argsort(-r.pred_scores, kind="stable")
        f = np.zeros((thresholds.size, k), dtype=bool)
        if r.true_box is not None:
            ious = iou_many(r.pred_boxes[order], r.true_box)
            ok = ious[None, :] >= thresholds[:, None]
            has = ok.any(axis=1)
            f[np.flatnonzero(has), ok.argmax(axis=1)[has]] = True
        img.append(np.full(k, i))
        scr.append(r.pred_scores[order])
        flags.append(f)
    if not img:
        return np.zeros(0, dtype=int), np.zeros(0), np.zeros((thresholds.size, 0), dtype=bool)
    img, scr, flags = np.concatenate(img), np.concatenate(scr), np.concatenate(flags, axis=1)
    order = np.argsort(-scr, kind="stable")
    return img[order], scr[order], flags[:, order]


def _interpolated_ap(w_det: np.ndarray, tp: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """COCO 101-point AP per resample: ``w_det`` (B, D) detection weights, ``tp`` (D,), ``n_gt`` (B,).

    A detection of weight w counts as w identical detections, so this is AP on the resampled images
    with the copies of an image kept together in score order (one valid order of tied scores; COCO's
    result also depends on how ties are ordered).
    """
    n_b, n_d = w_det.shape
    out = np.full(n_b, np.nan)
    has_gt = n_gt > 0
    if n_d == 0:
        out[has_gt] = 0.0
        return out
    ctp = np.cumsum(w_det * tp, axis=1)
    cfp = np.cumsum(w_det * ~tp, axis=1)
    recall = np.zeros_like(ctp)
    np.divide(ctp, n_gt[:, None], out=recall, where=has_gt[:, None])
    precision = np.zeros_like(ctp)
    np.divide(ctp, ctp + cfp, out=precision, where=(ctp + cfp) > 0)
    # precision envelope: the best precision at this recall or beyond
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # one searchsorted for all resamples: recall rows are non-decreasing in [0, 1], so shifting row b
    # by 2b keeps the flattened array sorted and each query inside its own row
    shift = 2.0 * np.arange(n_b)[:, None]
    idx = np.searchsorted((recall + shift).ravel(), (COCO_RECALL_POINTS[None, :] + shift).ravel(), side="left")
    idx = idx.reshape(n_b, -1) - (np.arange(n_b) * n_d)[:, None]
    found = idx < n_d
    q = np.where(found, np.take_along_axis(envelope, np.minimum(idx, n_d - 1), axis=1), 0.0)
    out[has_gt] = q.mean(axis=1)[has_gt]
    return out


def average_precision(records: Iterable, iou_threshold: float = 0.5) -> float:
    """COCO 101-point interpolated AP at one IoU threshold, over all boxes of all ``records``.

    NaN when no record has a true box.
    """
    recs = [DetectionRecord.coerce(r) for r in records]
    img, _, tp = _first_match_flags(recs, np.array([float(iou_threshold)]))
    n_gt = np.array([float(sum(r.true_box is not None for r in recs))])
    return float(_interpolated_ap(np.ones((1, img.size)), tp[0], n_gt)[0])


def detection_report(records: Iterable, conf_threshold: float = 0.25, groups=None, n_boot: int = 2000,
                     seed=0, level: float = 0.95, iou_threshold: float = 0.5) -> dict:
    """Detector metrics over ``records`` (``DetectionRecord`` or mappings), each with intervals.

    At ``conf_threshold`` and IoU >= ``iou_threshold``, with the top box per image: precision, recall,
    F1, false-detection rate on frames without a true box, mean IoU of the top box (over valve frames
    with a detection), per-patient hit rate (patients whose valve is found in at least one frame).
    Over all boxes: mAP50 and mAP50-95 (COCO 101-point AP, IoU 0.50:0.05:0.95).
    Lists: ``no_detection`` (valve frames without a box above threshold), ``mislocalised`` (top box
    IoU below threshold), ``false_detections`` (frames without a valve that got a box).

    Intervals (``report["intervals"][name]``): a bootstrap resampling patients (``groups``, default
    each record's ``patient``) for every metric; Wilson and Clopper-Pearson for the proportions, with
    ``"primary"`` the wider of the patient bootstrap and Clopper-Pearson. A bootstrap interval collapses
    to [1, 1] when every valve is found (and to [0, 0] when nothing is falsely detected): every resample
    then gives the same value, which says nothing about the next patient; read the exact interval there.
    Below ``MIN_PATIENTS_PER_CLASS`` patients the bootstrap gives no interval (NaN bounds, ``Interval.note``).
    """
    recs = [DetectionRecord.coerce(r) for r in records]
    n = len(recs)
    if n == 0:
        raise ValueError("no records to evaluate")
    patients = np.asarray([r.patient for r in recs] if groups is None else groups)
    if patients.shape[0] != n:
        raise ValueError("groups needs one label per record")

    has_gt = np.array([r.true_box is not None for r in recs])
    top_score = np.full(n, np.nan)
    top_iou = np.full(n, np.nan)
    detected = np.zeros(n, dtype=bool)
    for i, r in enumerate(recs):
        keep = r.pred_scores >= conf_threshold
        m = match_top_box(r.pred_boxes[keep], r.pred_scores[keep], r.true_box, iou_threshold)
        detected[i] = m.index is not None
        top_score[i], top_iou[i] = m.score, m.iou
    tp = has_gt & detected & (np.nan_to_num(top_iou, nan=-1.0) >= iou_threshold)
    fp = detected & ~tp
    fn = has_gt & ~tp
    bg_fp = detected & ~has_gt
    loc = has_gt & detected
    f = {k: v.astype(float) for k, v in
         {"tp": tp, "fp": fp, "fn": fn, "bg_fp": bg_fp, "bg": ~has_gt, "gt": has_gt, "loc": loc}.items()}

    codes, counts = resample_groups(patients, n_boot, seed)
    n_pat = counts.shape[1]
    pat_has = np.bincount(codes, weights=has_gt, minlength=n_pat) > 0
    pat_hit = np.bincount(codes, weights=tp, minlength=n_pat) > 0

    det_img, _, det_tp = _first_match_flags(recs, COCO_IOU_THRESHOLDS)

    def values(c: np.ndarray) -> dict[str, np.ndarray]:
        w = c[:, codes].astype(float)
        n_tp, n_fp, n_fn = w @ f["tp"], w @ f["fp"], w @ f["fn"]

        def div(a, b):
            out = np.full(a.shape, np.nan)
            np.divide(a, b, out=out, where=b > 0)
            return out

        wd = w[:, det_img]
        n_gt = w @ f["gt"]
        aps = np.stack([_interpolated_ap(wd, det_tp[j], n_gt) for j in range(COCO_IOU_THRESHOLDS.size)])
        cf = c.astype(float)
        return {
            "precision": div(n_tp, n_tp + n_fp),
            "recall": div(n_tp, n_gt),
            "f1": div(2 * n_tp, 2 * n_tp + n_fp + n_fn),
            "false_detection_rate": div(w @ f["bg_fp"], w @ f["bg"]),
            "mean_iou": div(w @ np.where(loc, top_iou, 0.0), w @ f["loc"]),
            "patient_hit_rate": div(cf @ pat_hit.astype(float), cf @ pat_has.astype(float)),
            "map50": aps[0],
            "map50_95": aps.mean(axis=0),
        }

    point = {k: float(v[0]) for k, v in values(np.ones((1, n_pat), dtype=np.int64)).items()}
    boot = {k: np.empty(n_boot) for k in point}
    chunk = max(1, 1_000_000 // max(n, det_img.size, 1))
    for start in range(0, n_boot, chunk):
        for k, v in values(counts[start:start + chunk]).items():
            boot[k][start:start + chunk] = v

    proportions = {
        "precision": (int(tp.sum()), int(detected.sum())),
        "recall": (int(tp.sum()), int(has_gt.sum())),
        "false_detection_rate": (int(bg_fp.sum()), int((~has_gt).sum())),
        "patient_hit_rate": (int(pat_hit.sum()), int(pat_has.sum())),
    }
    intervals: dict[str, dict[str, Interval]] = {}
    note = too_few_units([n_pat], "patients", MIN_PATIENTS_PER_CLASS)
    for name, est in point.items():
        b = (no_interval(est, "bootstrap-groups", n_pat, note) if note else
             percentile_interval(boot[name], est, level, "bootstrap-groups", n_pat))
        if name in proportions:
            intervals[name] = proportion_intervals(*proportions[name], level, b)
        else:
            intervals[name] = {"bootstrap": b, "primary": b}

    ids = np.array([r.image_id for r in recs], dtype=object)
    return {
        "n_images": n,
        "n_with_valve": int(has_gt.sum()),
        "n_background": int((~has_gt).sum()),
        "n_patients": n_pat,
        "conf_threshold": float(conf_threshold),
        "iou_threshold": float(iou_threshold),
        "level": level,
        "n_boot": n_boot,
        "counts": {"tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum()),
                   "background_fp": int(bg_fp.sum()), "mislocalised": int((loc & ~tp).sum())},
        "metrics": {k: v["primary"] for k, v in intervals.items()},
        "intervals": intervals,
        "no_detection": ids[has_gt & ~detected].tolist(),
        "mislocalised": ids[loc & ~tp].tolist(),
        "false_detections": ids[bg_fp].tolist(),
        "per_image": {"image_id": ids, "patient": patients, "has_valve": has_gt, "top_score": top_score,
                      "top_iou": top_iou, "hit": tp},
    }
