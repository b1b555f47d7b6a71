import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echoavc.cone.transform import StandardTransform, box_iou

crops = st.tuples(
    st.integers(-50, 400), st.integers(-50, 400), st.integers(1, 1200), st.integers(1, 1200),
    st.sampled_from([640, 320, 416]),
)


@given(crops, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
@settings(max_examples=300, deadline=None)
def test_boxes_round_trip_exactly(crop, a, b, c, d):
    t = StandardTransform.fit(*crop)
    x, y, w, h, _ = crop
    x1, x2 = sorted((x + a * w, x + c * w))
    y1, y2 = sorted((y + b * h, y + d * h))
    box = np.array([x1, y1, x2, y2])
    back = t.box_to_original(t.box_to_standard(box))
    assert np.allclose(back, box, atol=1e-9)
    # integer pixel boxes come back as the same integers
    ibox = np.round(box)
    assert np.array_equal(np.round(t.box_to_original(t.box_to_standard(ibox))), ibox)


@given(crops)
@settings(max_examples=200, deadline=None)
def test_crop_fills_the_square_without_distortion(crop):
    t = StandardTransform.fit(*crop)
    x, y, w, h, size = crop
    std = t.box_to_standard([x, y, x + w, y + h])
    # the longer side spans the whole image, the shorter is centred, one scale on both axes
    sw, sh = std[2] - std[0], std[3] - std[1]
    assert max(sw, sh) == pytest.approx(size)
    assert sw / sh == pytest.approx(w / h)
    assert std.min() >= -1e-9 and std.max() <= size + 1e-9
    assert (std[0] + std[2]) / 2 == pytest.approx(size / 2, abs=t.scale)
    assert (std[1] + std[3]) / 2 == pytest.approx(size / 2, abs=t.scale)


def test_apply_places_pixels_where_the_transform_says():
    rng = np.random.default_rng(1)
    image = np.zeros((480, 640), np.uint8)
    # a bright square with known edges inside a 300x200 crop
    image[150:190, 250:330] = 255
    t = StandardTransform.fit(100, 120, 300, 200, 640)
    out = t.apply(image)
    assert out.shape == (640, 640)
    x1, y1, x2, y2 = t.box_to_standard([250, 150, 330, 190])
    ys, xs = np.nonzero(out > 127)
    assert xs.min() == pytest.approx(x1, abs=1.01) and xs.max() + 1 == pytest.approx(x2, abs=1.01)
    assert ys.min() == pytest.approx(y1, abs=1.01) and ys.max() + 1 == pytest.approx(y2, abs=1.01)
    # colour images keep their channels
    rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert t.apply(rgb).shape == (640, 640, 3)


def test_circle_stays_round():
    import cv2

    image = np.zeros((600, 800), np.uint8)
    cv2.circle(image, (400, 300), 120, 255, -1)
    for crop in [(100, 50, 700, 500), (280, 180, 240, 240), (0, 0, 800, 600)]:
        out = StandardTransform.fit(*crop, 640).apply(image)
        ys, xs = np.nonzero(out > 127)
        assert (xs.max() - xs.min()) == pytest.approx(ys.max() - ys.min(), abs=2)


def test_serialises_exactly():
    t = StandardTransform.fit(37, 11, 513, 389, 640)
    assert StandardTransform.from_dict(t.to_dict()) == t


def test_box_iou():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
