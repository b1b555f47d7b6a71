"""The standard frame (echoavc.preprocess.StandardFrame): what ingest writes and predict screens."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "cone"))
from cone_synth import make_frames  # noqa: E402
from echoavc.cone import Cone, StandardTransform, find_cone, sector_polygon  # noqa: E402
from echoavc.preprocess import StandardFrame  # noqa: E402

# a wide 90-degree sector (its bounding box is about 2:1) and a tall rectangle
WIDE = Cone("sector", "image", tuple(map(tuple, sector_polygon((240.0, 20.0), (-45.0, 45.0), (0.0, 290.0)))),
            (240.0, 20.0), (-45.0, 45.0), (0.0, 290.0))
TALL = Cone("rectangle", "image", ((200.0, 10.0), (300.0, 10.0), (300.0, 350.0), (200.0, 350.0)))


def standardise(frame, cone, size, mask=None):
    """The pipeline's standard frame of one frame, with its transform (colour kept: grey=False)."""
    sf = StandardFrame.fit(cone, frame.shape[:2], size)
    if mask is not None:
        sf = StandardFrame(cone, mask.astype(np.uint8), sf.transform, False)
    return sf.standard(frame), sf.transform


def frame_with_disc(cone, shape=(360, 480), centre=None, radius=30):
    """Outside the cone everything is white (text everywhere); inside, grey with a white disc."""
    frame = np.full(shape, 255, np.uint8)
    mask = cone.mask(shape)
    frame[mask] = 90
    x, y, w, h = cone.bbox(shape)
    cx, cy = centre if centre is not None else (x + w // 2, y + h // 2)
    cv2.circle(frame, (cx, cy), radius, 255, -1)
    return frame, mask


@pytest.mark.parametrize("cone", [WIDE, TALL], ids=["wide-sector", "tall-rectangle"])
@pytest.mark.parametrize("size", [640, 320])
def test_standard_image_is_square_undistorted_and_black_outside(cone, size):
    frame, mask = frame_with_disc(cone)
    out, t = standardise(frame, cone, size)
    assert out.shape == (size, size) and out.dtype == np.uint8
    assert isinstance(t, StandardTransform) and t.size == size
    assert (t.crop_x, t.crop_y, t.crop_w, t.crop_h) == cone.bbox(frame.shape)

    # a circle stays a circle: one scale on both axes
    ys, xs = np.nonzero(out > 200)
    w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert abs(w - h) <= 1
    assert abs(w - 61 * t.scale) <= 2

    # nothing from outside the cone: wherever the resampled cone mask is empty the output is 0
    m_std = t.apply(mask.astype(np.uint8) * 255)
    assert out[m_std == 0].max() == 0
    assert (m_std == 0).any()  # the test means something: there is outside in the output

    # the letterbox bands are black
    if t.pad_x >= 1:
        assert out[:, : int(t.pad_x)].max() == 0
    if t.pad_y >= 1:
        assert out[: int(t.pad_y)].max() == 0


def test_boxes_round_trip_exactly_through_a_cone_transform():
    frame, _ = frame_with_disc(WIDE)
    _, t = standardise(frame, WIDE, 640)
    rng = np.random.default_rng(0)
    for _ in range(200):
        x1, x2 = np.sort(rng.uniform(0, 480, 2))
        y1, y2 = np.sort(rng.uniform(0, 360, 2))
        box = np.array([x1, y1, x2, y2])
        assert np.allclose(t.box_to_original(t.box_to_standard(box)), box, atol=1e-9)
        ibox = np.round(box)
        assert np.array_equal(np.round(t.box_to_original(t.box_to_standard(ibox))), ibox)
    # the disc's box lands where the disc is drawn in the standard image
    out, t = standardise(*frame_with_disc(WIDE, centre=(200, 150), radius=20)[:1], WIDE, 640)
    sx1, sy1, sx2, sy2 = t.box_to_standard([180, 130, 221, 171])
    ys, xs = np.nonzero(out > 200)
    assert abs(xs.min() - sx1) <= 2 and abs(xs.max() + 1 - sx2) <= 2
    assert abs(ys.min() - sy1) <= 2 and abs(ys.max() + 1 - sy2) <= 2


def test_colour_frames_and_a_precomputed_mask():
    frames, truth, marks = make_frames(dict(kind="sector", apex=(240, 20), angles=(-37.5, 37.5), radii=(0, 300)),
                                       colour=True, seed=2)
    cone = find_cone(frames)
    mask = cone.mask(frames.shape[1:3])
    for frame in frames:
        a, ta = standardise(frame, cone, 640)
        b, tb = standardise(frame, cone, 640, mask)
        assert a.shape == (640, 640, 3) and np.array_equal(a, b) and ta == tb
        # the ECG, text and dots (everything outside the cone) are gone
        outside_only = np.where(mask[..., None], 0, frame).astype(np.uint8)
        assert outside_only.any() and standardise(outside_only, cone, 640)[0].max() == 0
    with pytest.raises(ValueError):
        standardise(frames[0], cone, 640, mask[:-1])


def test_standardise_does_not_touch_its_input():
    frame, _ = frame_with_disc(TALL)
    before = frame.copy()
    standardise(frame, TALL, 320)
    assert np.array_equal(frame, before)


def plain_grey_and_overlay(sample, mask):
    """is_grey and overlay_in_cone as plain numpy over every field pixel (before issue 18 made them cheaper)."""
    inside = mask.astype(bool)
    px = sample[:, inside]
    grey = True
    if sample.ndim == 4:
        c = px[..., :3].max(axis=-1).astype(np.int16) - px[..., :3].min(axis=-1)
        grey = float(np.mean(c > 24)) < 0.002
        coloured = c > 60
        if 20 <= int(coloured.any(axis=0).sum()) and coloured.mean() < 0.05:
            return grey, "coloured marks"
    if sample.shape[0] < 3:
        return grey, ""
    g = (px[..., 0].astype(np.float32) + px[..., 1] + px[..., 2]) / 3 if sample.ndim == 4 else px.astype(np.float32)
    static = (g.min(axis=0) >= 200) & (g.std(axis=0) < 2.0)
    return grey, "static bright marks" if int(static.sum()) >= 30 else ""


@pytest.mark.parametrize("layout", ["grey", "colour-field", "grey-rgb", "coloured-mark", "static-mark", "two-frames"])
def test_grey_and_overlay_judged_as_over_every_field_pixel(layout):
    from echoavc.preprocess import is_grey, overlay_in_cone

    frames, truth, _ = make_frames(dict(kind="sector", apex=(240, 20), angles=(-37.5, 37.5), radii=(0, 300)),
                                   colour=layout == "colour-field", seed=3, n_frames=2 if layout == "two-frames" else 6)
    if frames.ndim == 3 and layout != "grey":
        frames = np.repeat(frames[..., None], 3, axis=3)
    if layout == "coloured-mark":
        frames[:, 150:154, 200:220] = (255, 255, 0)
    if layout in ("static-mark", "two-frames"):
        frames[:, 120:130, 230:250] = 200  # exactly at the level a static mark needs
    mask = truth.astype(np.uint8)
    want = plain_grey_and_overlay(frames, mask)
    assert (frames.ndim == 3 or is_grey(frames, mask), overlay_in_cone(frames, mask)) == want
    outline = tuple(map(tuple, sector_polygon((240, 20), (-37.5, 37.5), (0, 300))))
    sf = StandardFrame.of_sample(Cone("sector", "image", outline), frames, 320)
    assert (sf.grey, sf.overlay) == want
    expected = {"grey": (True, ""), "colour-field": (False, "coloured marks"), "grey-rgb": (True, ""),
                "coloured-mark": (True, "coloured marks"), "static-mark": (True, "static bright marks"),
                "two-frames": (True, "")}[layout]
    assert want == expected  # each layout reaches the answer it is there for


def test_grey_and_overlay_of_an_empty_field():
    from echoavc.preprocess import is_grey, overlay_in_cone

    frames = np.random.default_rng(0).integers(0, 255, (4, 60, 80, 3), dtype=np.uint8)
    empty = np.zeros((60, 80), np.uint8)
    assert is_grey(frames, empty) is False and overlay_in_cone(frames, empty) == ""
    assert overlay_in_cone(frames[..., 0], empty) == ""
