"""The overlay pictures: what a reader of the report sees on each frame."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from echoavc.report.overlay import (
    CALCIFIED_RGB,
    LABEL_BACKGROUND_RGB,
    NOT_CALCIFIED_RGB,
    box_colour,
    encode_png,
    frame_overlay,
    png_data_uri,
    thumbnail,
)

BOX = (200.0, 220.0, 330.0, 340.0)


def _frame(value: int = 60) -> np.ndarray:
    return np.full((640, 640), value, np.uint8)


def test_output_is_rgb_uint8_of_the_same_size_and_input_untouched():
    grey = _frame()
    before = grey.copy()
    out = frame_overlay(grey, box=BOX, label="calcified P=0.93 (valve 0.88)", decision="calcified")
    assert out.shape == (640, 640, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(grey, before)
    rgb = np.dstack([_frame()] * 3)
    assert frame_overlay(rgb).shape == (640, 640, 3)
    np.testing.assert_array_equal(frame_overlay(rgb), rgb)  # nothing asked for, nothing drawn


def test_box_colour_follows_the_decision():
    pos = frame_overlay(_frame(0), box=BOX, decision="calcified")
    neg = frame_overlay(_frame(0), box=BOX, decision="not calcified")
    und = frame_overlay(_frame(0), box=BOX, decision=None)
    # A pixel on the box's left edge, half-way down.
    y, x = 280, 200
    assert tuple(pos[y, x]) == CALCIFIED_RGB
    assert tuple(neg[y, x]) == NOT_CALCIFIED_RGB
    assert len({tuple(pos[y, x]), tuple(neg[y, x]), tuple(und[y, x])}) == 3
    assert pos[y, x, 0] > pos[y, x, 1]  # red-ish
    assert neg[y, x, 1] > neg[y, x, 0]  # green
    assert box_colour("undetermined") == box_colour(None)


def test_cone_outline_drawn_in_cyan():
    cone = np.array([[320.0, 40.0], [40.0, 600.0], [600.0, 600.0]])
    out = frame_overlay(_frame(0), cone_outline=cone)
    row = out[600, 100:540]
    assert np.any(np.all(row == (0, 255, 255), axis=1))
    assert out[300, 320].tolist() == [0, 0, 0]  # inside, untouched


def test_cam_changes_pixels_only_inside_the_cam_region():
    img = _frame(90)
    cam = np.zeros((640, 640), np.float32)
    cam[250:350, 250:350] = 0.9
    cam[100:110, 100:110] = 0.04  # below the floor: must not show
    out = frame_overlay(img, cam=cam, alpha=0.5)
    changed = np.any(out != np.dstack([img] * 3), axis=2)
    assert changed[250:350, 250:350].all()
    assert not changed[cam <= 0.05].any()
    # Stronger cam, stronger tint.
    weak = frame_overlay(img, cam=cam * 0.3, alpha=0.5)
    diff_strong = np.abs(out[300, 300].astype(int) - 90).sum()
    diff_weak = np.abs(weak[300, 300].astype(int) - 90).sum()
    assert diff_strong > diff_weak > 0
    # JET in RGB order: the hottest evidence is red, not blue.
    hot = frame_overlay(np.zeros((640, 640), np.uint8), cam=np.ones((640, 640)), alpha=1.0)[0, 0]
    assert hot[0] > 100 and hot[2] < 30


def test_label_kept_inside_the_image_for_a_box_at_the_top_edge():
    img = _frame(255)
    label = "calcified P=0.93 (valve 0.88)"
    out = frame_overlay(img, box=(560.0, 0.0, 640.0, 60.0), label=label, decision="calcified")
    dark = np.all(out == LABEL_BACKGROUND_RGB, axis=2)
    ys, xs = np.nonzero(dark)
    assert ys.size > 200  # the background was drawn
    # The whole label width fits: text size at the default scale is well over 150 px.
    (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    assert xs.max() - xs.min() + 1 >= tw
    assert xs.max() <= 639 and xs.min() >= 0 and ys.min() >= 0
    # White text inside the dark background (readable).
    box_region = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert np.any(np.all(box_region == (255, 255, 255), axis=2))


def test_label_sits_above_a_box_with_room():
    out = frame_overlay(_frame(255), box=BOX, label="not calcified P=0.10", decision="not calcified")
    ys, _ = np.nonzero(np.all(out == LABEL_BACKGROUND_RGB, axis=2))
    assert ys.size and ys.max() < BOX[1]


@pytest.mark.parametrize("kwargs, match", [
    ({"cam": np.zeros((320, 320), np.float32)}, "cam"),
    ({"box": (1.0, 2.0, 3.0)}, "box"),
    ({"cone_outline": np.zeros((5, 3))}, "cone_outline"),
    ({"box": (1.0, float("nan"), 3.0, 4.0)}, "box"),
    ({"alpha": 1.5}, "alpha"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        frame_overlay(_frame(), **kwargs)


@pytest.mark.parametrize("image", [np.zeros((640, 640, 4), np.uint8), np.zeros((640, 640), np.float32),
                                   np.zeros((2, 640, 640), np.uint8)])
def test_bad_images_raise(image):
    with pytest.raises(ValueError, match="image"):
        frame_overlay(image)


def test_thumbnail_keeps_the_aspect_ratio():
    img = np.zeros((640, 480, 3), np.uint8)
    t = thumbnail(img, 160)
    assert t.shape == (213, 160, 3)
    assert thumbnail(_frame(), 100).shape == (100, 100)
    with pytest.raises(ValueError):
        thumbnail(img, 0)


def test_png_round_trip_keeps_rgb_order_and_data_uri():
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    back = cv2.imdecode(np.frombuffer(encode_png(img), np.uint8), cv2.IMREAD_COLOR)
    assert back[0, 0].tolist() == [0, 0, 255]  # BGR on disk: red
    uri = png_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == encode_png(img)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.float64))
