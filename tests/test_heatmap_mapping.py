"""A heat map computed on a valve crop lands where it belongs on the frame.

Grad-CAM works on the classifier's crop (box + margin, letterboxed to a square); ``crop_to_image`` maps the map
back onto the 640x640 frame for the overlay. The overlay test in test_predict.py stubs the heat map, so this is
where the mapping itself is checked: a bright blob put into the frame is found in the crop, a heat map peaked
there is mapped back, and its peak must land within 2 px of the blob. Mapping that swaps the crop's axes, or
forgets the letterbox offset, moves the peak and fails (shown below).
"""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.preprocess.crop import crop_to_image, valve_crop

FRAME = (640, 640)

# box (x1, y1, x2, y2), blob (x, y) inside it off the centre, crop size, margin: wide, tall, square, cut by the
# frame's edge
CASES = [
    ((200.0, 250.0, 380.0, 330.0), (230, 315), 224, 0.1),
    ((300.0, 100.0, 360.0, 260.0), (345, 130), 128, 0.1),
    ((150.0, 150.0, 250.0, 250.0), (170, 235), 64, 0.25),
    ((560.0, 20.0, 638.0, 90.0), (620, 30), 128, 0.1),
    ((0.5, 500.0, 90.0, 600.0), (15, 585), 224, 0.1),
]


def _blob(shape, x, y, sigma=3.0) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def peak_error(box, blob, size, margin, to_image=crop_to_image) -> float:
    """Distance (px) between the blob in the frame and the peak of the heat map mapped back by ``to_image``."""
    frame = (255 * _blob(FRAME, *blob)).astype(np.uint8)
    crop = valve_crop(frame, box, size, margin)
    cy, cx = np.unravel_index(np.argmax(crop), crop.shape)
    heat = _blob(crop.shape, cx, cy, sigma=max(1.5, size / 64))  # a Grad-CAM-like map peaked on the blob
    back = to_image(heat, box, FRAME, margin)
    assert back.shape == FRAME and back.dtype == np.float32
    py, px = np.unravel_index(np.argmax(back), back.shape)
    return float(np.hypot(px - blob[0], py - blob[1]))


@pytest.mark.parametrize("box, blob, size, margin", CASES)
def test_heat_map_peak_lands_on_the_blob(box, blob, size, margin):
    assert peak_error(box, blob, size, margin) <= 2.0


def test_mapped_heat_map_is_zero_outside_the_crop_window():
    box, margin = (200.0, 250.0, 380.0, 330.0), 0.1
    back = crop_to_image(np.ones((224, 224), np.float32), box, FRAME, margin)
    m = margin * 180  # the window: box plus margin on every side
    ys, xs = np.nonzero(back)
    assert xs.min() >= np.floor(200 - m) and xs.max() <= np.ceil(380 + m)
    assert ys.min() >= np.floor(250 - m) and ys.max() <= np.ceil(330 + m)


def _swapped_axes(values, box, shape, margin):
    return crop_to_image(np.ascontiguousarray(values.T), box, shape, margin)


def _no_letterbox(values, box, shape, margin):
    """Stretches the whole square crop over the window, ignoring the black bands of a non-square box."""
    import cv2

    x1, y1, x2, y2 = box
    m = margin * max(x2 - x1, y2 - y1)
    x1, y1, x2, y2 = (int(np.floor(x1 - m)), int(np.floor(y1 - m)), int(np.ceil(x2 + m)), int(np.ceil(y2 + m)))
    out = np.zeros(shape, np.float32)
    out[y1:y2, x1:x2] = cv2.resize(values, (x2 - x1, y2 - y1))
    return out


@pytest.mark.parametrize("broken", [_swapped_axes, _no_letterbox])
def test_a_wrong_mapping_misses_the_blob(broken):
    box, blob, size, margin = CASES[0]  # a wide box, blob off the diagonal
    assert peak_error(box, blob, size, margin, broken) > 2.0
