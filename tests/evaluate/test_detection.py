import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echoavc.cone.transform import box_iou
from echoavc.evaluate.detection import (
    COCO_IOU_THRESHOLDS,
    DetectionRecord,
    _first_match_flags,
    _interpolated_ap,
    average_precision,
    detection_report,
    iou_many,
    match_top_box,
)

GT = np.array([0.0, 0.0, 10.0, 10.0])


def box(h):
    """A box over the top of GT with IoU exactly h / 10."""
    return [0.0, 0.0, 10.0, h]


def hand_records():
    # IoUs are kept off the 0.05 grid so no threshold sits on a boundary
    return [
        {"image_id": "i1", "patient": "p1", "true_box": GT, "pred_boxes": [box(8.2), box(7.2)],
         "pred_scores": [0.9, 0.5]},
        {"image_id": "i2", "patient": "p2", "true_box": GT, "pred_boxes": [box(6.2)], "pred_scores": [0.8]},
        {"image_id": "bg", "patient": "p2", "true_box": None, "pred_boxes": [box(5)], "pred_scores": [0.7]},
        {"image_id": "i3", "patient": "p3", "true_box": GT, "pred_boxes": [box(3)], "pred_scores": [0.6]},
    ]


boxes = st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0.5, 80), st.floats(0.5, 80)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@given(st.lists(boxes, min_size=1, max_size=5), boxes)
@settings(max_examples=100, deadline=None)
def test_iou_many_agrees_with_box_iou(many, one):
    assert iou_many(many, one) == pytest.approx([box_iou(b, one) for b in many], abs=1e-12)


def test_match_top_box():
    m = match_top_box([box(9), box(3)], [0.4, 0.6], GT)  # the top score wins, not the best IoU
    assert (m.index, m.score, m.iou, m.hit) == (1, 0.6, pytest.approx(0.3), False)
    assert match_top_box([box(5)], [0.9], GT).hit  # IoU exactly 0.5 is a hit
    assert not match_top_box([box(5)], [0.9], GT, iou_threshold=0.51).hit
    empty = match_top_box(np.zeros((0, 4)), [], GT)
    assert empty.index is None and not empty.hit and math.isnan(empty.iou)
    bg = match_top_box([box(5)], [0.9], None)
    assert bg.index == 0 and not bg.hit and math.isnan(bg.iou)


def test_ap_by_hand():
    # IoU 0.5: scores 0.9 TP, 0.8 TP, 0.7 FP, 0.6 FP, 0.5 FP (duplicate: the valve is already taken);
    # recall 1/3, 2/3, 2/3, ... with precision 1, 1 -> recall points 0.00..0.66 (67 of 101) get 1
    recs = hand_records()
    assert average_precision(recs, 0.5) == pytest.approx(67 / 101)
    # IoU 0.75: only the 0.82 box is a TP -> points 0.00..0.33 (34 of 101)
    assert average_precision(recs, 0.75) == pytest.approx(34 / 101)
    assert average_precision(recs, 0.85) == 0.0
    r = detection_report(recs, conf_threshold=0.25, n_boot=200)
    # 0.50, 0.55, 0.60 -> 67; 0.65 .. 0.80 -> 34; 0.85 .. 0.95 -> 0
    assert r["metrics"]["map50"].estimate == pytest.approx(67 / 101)
    assert r["metrics"]["map50_95"].estimate == pytest.approx((3 * 67 + 4 * 34) / 1010)


def test_ap_counts_a_lower_box_that_finds_the_valve():
    recs = [{"image_id": "a", "patient": "p", "true_box": GT, "pred_boxes": [box(3), box(9)],
             "pred_scores": [0.9, 0.4]}]
    # 0.9 FP then 0.4 TP: recall 0 -> 1 at precision 1/2, so every recall point gets 1/2
    assert average_precision(recs, 0.5) == pytest.approx(0.5)
    r = detection_report(recs, n_boot=50)
    assert r["metrics"]["recall"].estimate == 0.0 and r["mislocalised"] == ["a"]  # the pipeline crops the top box


def test_ap_without_valves_is_undefined_and_without_boxes_is_zero():
    bg = [{"image_id": "b", "patient": "p", "true_box": None, "pred_boxes": [box(5)], "pred_scores": [0.5]}]
    assert math.isnan(average_precision(bg))
    none = [{"image_id": "a", "patient": "p", "true_box": GT, "pred_boxes": [], "pred_scores": []}]
    assert average_precision(none) == 0.0


def reference_ap(records, t):
    """COCO evaluate/accumulate for one class, written plainly as a check."""
    dets, n_gt = [], 0
    for r in records:
        n_gt += r["true_box"] is not None
        order = np.argsort(-np.asarray(r["pred_scores"], dtype=float), kind="mergesort")
        taken = False
        for j in order:
            ok = False
            if r["true_box"] is not None and not taken:
                ok = box_iou(r["pred_boxes"][j], r["true_box"]) >= t
                taken = ok
            dets.append((r["pred_scores"][j], ok))
    if n_gt == 0:
        return math.nan
    order = np.argsort([-s for s, _ in dets], kind="mergesort")
    tps = np.cumsum([dets[i][1] for i in order])
    fps = np.cumsum([not dets[i][1] for i in order])
    rc = tps / n_gt
    pr = tps / (tps + fps + np.spacing(1))
    pr = pr.tolist()
    for i in range(len(pr) - 1, 0, -1):
        if pr[i] > pr[i - 1]:
            pr[i - 1] = pr[i]
    q = np.zeros(101)
    inds = np.searchsorted(rc, np.linspace(0, 1, 101), side="left")
    for ri, pi in enumerate(inds):
        if pi < len(pr):
            q[ri] = pr[pi]
    return q.mean()


def random_records(rng, n):
    recs = []
    for i in range(n):
        t = None if rng.random() < 0.2 else np.array([20.0, 20.0, 60.0, 60.0])
        k = int(rng.integers(0, 4))
        pred = np.array([20.0, 20.0, 60.0, 60.0]) + rng.normal(0, 8, (k, 4))
        recs.append({"image_id": str(i), "patient": f"p{i // 3}", "true_box": t, "pred_boxes": pred,
                     "pred_scores": np.round(rng.random(k), 1)})  # rounded: ties across images
    return recs


@given(st.integers(0, 2**32 - 1), st.integers(1, 25))
@settings(max_examples=60, deadline=None)
def test_ap_agrees_with_a_plain_coco_loop(seed, n):
    recs = random_records(np.random.default_rng(seed), n)
    for t in (0.5, 0.75):
        got, want = average_precision(recs, t), reference_ap(recs, t)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_weighted_ap_equals_ap_on_duplicated_images(seed):
    # what the patient bootstrap relies on: an image drawn w times counts as w copies of it
    # Ties between images stay (rounded scores); ties inside one image are broken, because there the
    # copies of an image interleave their boxes, a different but equally valid order of tied scores.
    rng = np.random.default_rng(seed)
    recs = random_records(rng, 8)
    for r in recs:
        r["pred_scores"] = r["pred_scores"] + 1e-3 * np.arange(len(r["pred_scores"]))
    recs = [DetectionRecord.coerce(r) for r in recs]
    w = rng.integers(0, 4, len(recs))
    dup = [r for r, k in zip(recs, w) for _ in range(k)]
    img, _, tp = _first_match_flags(recs, COCO_IOU_THRESHOLDS)
    n_gt = np.array([float(sum(k for r, k in zip(recs, w) if r.true_box is not None))])
    for j, t in enumerate(COCO_IOU_THRESHOLDS):
        got = _interpolated_ap(w[img][None, :].astype(float), tp[j], n_gt)[0]
        want = average_precision(dup, t) if dup else math.nan
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9)


def test_report_by_hand():
    r = detection_report(hand_records(), conf_threshold=0.25, n_boot=300, seed=1)
    m = {k: v.estimate for k, v in r["metrics"].items()}
    # top boxes: i1 0.82 hit, i2 0.62 hit, bg false detection, i3 0.30 mislocalised
    assert r["counts"] == {"tp": 2, "fp": 2, "fn": 1, "background_fp": 1, "mislocalised": 1}
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(4 / 7)
    assert m["false_detection_rate"] == 1.0
    assert m["mean_iou"] == pytest.approx((0.82 + 0.62 + 0.3) / 3)
    assert m["patient_hit_rate"] == pytest.approx(2 / 3)
    assert r["no_detection"] == [] and r["mislocalised"] == ["i3"] and r["false_detections"] == ["bg"]
    rec = r["intervals"]["recall"]
    assert (rec["wilson"].lo, rec["wilson"].hi) == pytest.approx((0.2077, 0.9385), abs=1e-4)
    assert rec["bootstrap"].method == "bootstrap-groups" and rec["bootstrap"].n == 3
    assert r["n_patients"] == 3 and r["n_with_valve"] == 3 and r["n_background"] == 1


def test_confidence_threshold_turns_weak_boxes_into_misses():
    recs = hand_records()
    r = detection_report(recs, conf_threshold=0.85, n_boot=50)
    assert r["no_detection"] == ["i2", "i3"] and r["false_detections"] == []
    assert r["metrics"]["precision"].estimate == 1.0 and r["metrics"]["recall"].estimate == pytest.approx(1 / 3)
    # mAP integrates over every score, so the threshold does not change it
    assert r["metrics"]["map50"].estimate == pytest.approx(67 / 101)


def test_every_valve_found_collapses_the_bootstrap_not_the_exact_interval():
    recs = [{"image_id": str(i), "patient": f"p{i}", "true_box": GT, "pred_boxes": [box(9)], "pred_scores": [0.9]}
            for i in range(6)]
    r = detection_report(recs, n_boot=300)
    boot = r["intervals"]["recall"]["bootstrap"]
    assert (boot.estimate, boot.lo, boot.hi) == (1.0, 1.0, 1.0)
    primary = r["metrics"]["recall"]
    assert primary.method == "clopper-pearson" and primary.lo == pytest.approx(0.025 ** (1 / 6))
    assert math.isnan(r["metrics"]["false_detection_rate"].estimate)  # no background frames


def test_patients_are_resampled_and_seed_reproduces():
    rng = np.random.default_rng(0)
    recs = random_records(rng, 60)
    a = detection_report(recs, conf_threshold=0.3, n_boot=300, seed=4)
    b = detection_report(recs, conf_threshold=0.3, n_boot=300, seed=4)
    c = detection_report(recs, conf_threshold=0.3, n_boot=300, seed=5)
    assert a["metrics"] == b["metrics"] and a["metrics"]["map50"] != c["metrics"]["map50"]
    assert a["intervals"]["map50"]["bootstrap"].n == 20
    # per-image ids grouped as one patient: fewer units, so a wider mAP interval than per image
    per_image = detection_report(recs, conf_threshold=0.3, n_boot=300, seed=4,
                                 groups=[r["image_id"] for r in recs])
    assert per_image["intervals"]["map50"]["bootstrap"].n == 60
    for name in ("map50", "recall", "precision"):
        iv = a["intervals"][name]["bootstrap"]
        assert iv.lo <= iv.estimate <= iv.hi


def test_record_checks():
    with pytest.raises(ValueError):
        DetectionRecord.coerce({"image_id": "a", "patient": "p", "true_box": GT, "pred_boxes": [box(5)],
                                "pred_scores": [0.5, 0.4]})
    with pytest.raises(TypeError):
        DetectionRecord.coerce(("a", "p"))
    with pytest.raises(ValueError):
        detection_report([])
