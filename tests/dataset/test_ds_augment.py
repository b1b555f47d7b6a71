"""Augmentation: the paper's presets and counts; boxes follow the valve (property test); rejections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from echoavc.dataset.augment import (
    EXPERIMENTS, TABLE1, TECHNIQUES, OnlineAugmenter, Variant, apply_variant, augment, class_weights,
    duplicate_minority, parse_augmentation, variants,
)
from echoavc.errors import EchoAVCError


def valve_scene(size, cx, cy, ax, ay, angle):
    img = np.full((size, size), 20, np.uint8)
    cv2.ellipse(img, (cx, cy), (ax, ay), angle, 0, 360, 230, -1)
    ys, xs = np.nonzero(img > 127)
    return img, (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def test_table1_experiments_and_counts():
    assert TABLE1 == {1: "original", 2: "zoom", 3: "translation", 4: "rotation", 5: "gamma", 6: "all",
                      7: "translation+rotation"}
    assert parse_augmentation(4) == ("rotation",) and parse_augmentation("table1-6") == EXPERIMENTS["all"]
    assert parse_augmentation("rotation+translation") == ("rotation", "translation")
    assert parse_augmentation("online") == "online" and parse_augmentation("none") == ()
    with pytest.raises(EchoAVCError):
        parse_augmentation("shear")
    # paper: 61 images -> 183 with one technique, 549 with all four, 305 with translation + rotation
    sizes = {name: 61 * (1 + len(variants(t))) for name, t in EXPERIMENTS.items()}
    assert sizes == {"original": 61, "zoom": 183, "translation": 183, "rotation": 183, "gamma": 183, "all": 549,
                     "translation+rotation": 305}
    assert [v.name for v in variants(("zoom", "gamma"))] == ["zoom0.5", "zoom2", "gamma0.5", "gamma1.2"]


def test_paper_parameters_act_on_the_pixels():
    img, box = valve_scene(96, 48, 48, 10, 7, 0)
    t = apply_variant(img, box, Variant("translation", 0.2))
    assert np.allclose(t.box, np.add(box, 19.2), atol=0.5)  # albumentations shifts by whole pixels
    z = apply_variant(img, box, Variant("zoom", 2.0))
    assert z.box[2] - z.box[0] == pytest.approx(2 * (box[2] - box[0]), abs=0.01)
    g = apply_variant(np.full((32, 32), 64, np.uint8), None, Variant("gamma", 0.5))
    assert abs(int(g.image[0, 0]) - round(255 * (64 / 255) ** 0.5)) <= 1
    g = apply_variant(np.full((32, 32), 64, np.uint8), None, Variant("gamma", 1.2))
    assert abs(int(g.image[0, 0]) - round(255 * (64 / 255) ** 1.2)) <= 1
    r = apply_variant(img, box, Variant("rotation", 10))
    assert r.ok and r.box[2] - r.box[0] > box[2] - box[0]  # the rotated valve needs a wider box


@settings(max_examples=60, deadline=None)
@given(cx=st.integers(20, 76), cy=st.integers(20, 76), ax=st.integers(3, 18), ay=st.integers(3, 18),
       angle=st.integers(0, 179), which=st.integers(0, 7), online_seed=st.integers(0, 10**6))
def test_augmented_boxes_enclose_the_transformed_valve(cx, cy, ax, ay, angle, which, online_seed):
    img, box = valve_scene(96, cx, cy, ax, ay, angle)
    v = variants(TECHNIQUES)[which]
    cases = [apply_variant(img, box, v), OnlineAugmenter(online_seed)(img, box)]
    # the box corners mapped independently (either rotation sense): rejection must mean they leave the image
    reach = [_corners_outside(box, v, sign) for sign in (1, -1)]
    for a in cases:
        ys, xs = np.nonzero(a.image > 127)
        if not a.ok:
            assert max(reach) > 0.5 - 1.0, (v, box, reach)
            continue
        if a is cases[0]:
            assert min(reach) <= 0.5 + 1.0, (v, box, reach)  # kept: the valve box stayed inside
        assert xs.size > 0
        x1, y1, x2, y2 = a.box
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
        tol = 1.0  # interpolation spreads an edge by up to a pixel
        assert xs.min() >= x1 - tol and xs.max() + 1 <= x2 + tol
        assert ys.min() >= y1 - tol and ys.max() + 1 <= y2 + tol


def _corners_outside(box, v, sign, size=96):
    """How far (px) the variant's mapped box corners reach outside a size x size image."""
    x1, y1, x2, y2 = box
    p = np.array([(x1, y1), (x2, y1), (x1, y2), (x2, y2)], float)
    c = size / 2
    if v.technique == "translation":
        p = p + v.value * size
    elif v.technique == "zoom":
        p = c + (p - c) * v.value
    elif v.technique == "rotation":
        t = np.radians(sign * v.value)
        R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        p = c + (p - c) @ R.T
    return float(max(-p.min(), p.max() - size))  # negative: inside by that much


def test_a_valve_that_leaves_the_image_is_rejected_with_a_reason():
    img, box = valve_scene(96, 84, 48, 8, 8, 0)
    results = {a.name: a for a in augment(img, box, EXPERIMENTS["all"])}
    assert not results["zoom2"].ok and "leaves the image" in results["zoom2"].reason
    assert not results["translation+0.2"].ok
    assert results["zoom0.5"].ok and results["gamma0.5"].ok


def test_online_is_seeded():
    img, box = valve_scene(96, 48, 48, 10, 7, 0)
    a1, a2, b = OnlineAugmenter(5)(img, box), OnlineAugmenter(5)(img, box), OnlineAugmenter(6)(img, box)
    assert np.array_equal(a1.image, a2.image) and a1.box == a2.box
    assert not np.array_equal(a1.image, b.image)


def test_balancing():
    labels = [1, 0, 0, 0, 0, 1, 0]
    extra = duplicate_minority(labels, np.random.default_rng(0))
    assert len(extra) == 3 and all(labels[i] == 1 for i in extra)
    balanced = labels + [labels[i] for i in extra]
    assert balanced.count(0) == balanced.count(1)
    w = class_weights(labels)
    assert w[1] * 2 == pytest.approx(w[0] * 5)
    assert duplicate_minority([0, 1], np.random.default_rng(0)) == []
