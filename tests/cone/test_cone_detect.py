"""find_cone on synthetic clips of known geometry: speckle with beating dark cavities inside,
text, depth dots, a probe marker and a sweeping ECG trace outside."""

import zlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cone_synth import make_frames, truth_mask
from echoavc.cone import find_cone, mask_iou, valid_region
from echoavc.errors import EchoAVCError
from echoavc.settings import ConeSettings

FAMILIES = {
    "sector-60": dict(kind="sector", apex=(240, 20), angles=(-30, 30), radii=(0, 300)),
    "sector-75": dict(kind="sector", apex=(240, 20), angles=(-37.5, 37.5), radii=(0, 300)),
    "sector-90": dict(kind="sector", apex=(240, 20), angles=(-45, 45), radii=(0, 290)),
    "sector-steered": dict(kind="sector", apex=(250, 25), angles=(-40, 30), radii=(0, 290)),
    "zoomed-apex-above": dict(kind="sector", apex=(240, -150), angles=(-28, 28), radii=(0, 470)),
    "curved-array": dict(kind="sector", apex=(240, -80), angles=(-35, 35), radii=(120, 400)),
    "linear": dict(kind="rectangle", rect=(100, 30, 380, 320)),
    # the region cuts the sector's corners, and depth dots sit right beside it
    "us-region": dict(kind="sector", apex=(240, 20), angles=(-37.5, 37.5), radii=(0, 300), region=(70, 10, 409, 330)),
}
VARIANTS = {
    "clip": dict(n_frames=6),
    "one-frame": dict(n_frames=1),
    "colour": dict(n_frames=6, colour=True),
    "dim-side": dict(n_frames=12, dim_side=True),
    "still-top": dict(n_frames=6, still_top=True),
    "jpeg": dict(n_frames=6, jpeg=85),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_known_geometry_is_recovered(family, variant):
    geom = FAMILIES[family]
    frames, truth, marks = make_frames(geom, seed=zlib.crc32(f"{family}/{variant}".encode()) % 1000, **VARIANTS[variant])
    regions = [geom["region"]] if "region" in geom else None
    cone = find_cone(frames, regions)
    mask = cone.mask(truth.shape)

    assert mask_iou(mask, truth) >= 0.97
    assert not (mask & marks).any(), "text, dots or ECG inside the cone"
    assert cone.kind == geom["kind"]
    assert cone.source == ("us_region" if regions else "image")
    if geom["kind"] == "sector":
        tol = 4.0 if "jpeg" in VARIANTS[variant] else 1.5  # px; JPEG ringing blurs the far edge
        assert np.allclose(cone.angles, geom["angles"], atol=0.25)
        assert abs(cone.radii[1] - geom["radii"][1]) <= tol
        assert np.hypot(*np.subtract(cone.apex, geom["apex"])) <= tol
        if geom["radii"][0] > 0:  # curved array: an annular sector
            assert abs(cone.radii[0] - geom["radii"][0]) <= tol
        else:
            assert cone.radii[0] == 0.0


@given(
    half=st.floats(25, 45),
    skew=st.floats(-6, 6),
    apex_x=st.floats(140, 180),
    apex_y=st.floats(-90, 20),
    depth=st.floats(0.75, 0.95),
    curved=st.booleans(),
    seed=st.integers(0, 10_000),
)
@settings(max_examples=12, deadline=None)
def test_random_sectors_are_recovered(half, skew, apex_x, apex_y, depth, curved, seed):
    shape = (240, 320)
    r_max = (shape[0] - 30 - apex_y) * depth
    # keep the corners inside the image, as scanners do
    half = min(half, np.degrees(np.arcsin(min(1.0, (min(apex_x, shape[1] - apex_x) - 12) / r_max))) - abs(skew))
    # curved arrays: the probe face (near arc) lies inside the image, the virtual apex above it
    r_min = 20.0 - apex_y if curved else 0.0
    geom = dict(kind="sector", apex=(apex_x, apex_y), angles=(-half + skew, half + skew), radii=(r_min, r_max))
    frames, truth, marks = make_frames(geom, shape=shape, n_frames=4, seed=seed)
    assume(truth.mean() >= 0.10)
    cone = find_cone(frames)
    assert cone.kind == "sector"
    assert mask_iou(cone.mask(shape), truth) >= 0.97
    assert not (cone.mask(shape) & marks).any()


def test_invalid_region_is_ignored_and_the_image_is_searched():
    geom = FAMILIES["sector-75"]
    frames, truth, _ = make_frames(geom, seed=3)
    # written for a 2x larger image, as in files rescaled after the regions were written
    cone = find_cone(frames, [(84, 31, 1190, 828)])
    assert cone.source == "image" and mask_iou(cone.mask(truth.shape), truth) >= 0.97


def test_a_valid_region_is_trusted_over_what_lies_outside_it():
    geom = dict(FAMILIES["sector-75"], region=(50, 15, 429, 325))
    frames, truth, _ = make_frames(geom, n_frames=1, seed=8)
    frames[:, :14, :] = 120  # a header banner above the region, larger than the field's gaps
    cone = find_cone(frames, [geom["region"]])
    assert cone.source == "us_region" and mask_iou(cone.mask(truth.shape), truth) >= 0.97
    # the field inside the region is too dark to see: no cone, rather than the banner
    dark = frames.copy()
    dark[:, 15:] = 0
    with pytest.raises(EchoAVCError, match="us_region"):
        find_cone(dark, [geom["region"]])


@pytest.mark.parametrize("n_frames", [1, 6])
def test_a_field_broken_by_a_dark_band_is_joined_inside_a_region(n_frames):
    geom = dict(FAMILIES["sector-75"], region=(40, 10, 439, 330))
    frames, truth, _ = make_frames(geom, n_frames=n_frames, seed=9)
    yy, xx = np.mgrid[0:360, 0:480] + 0.5
    r = np.hypot(xx - 240, yy - 20)
    frames[:, (r > 110) & (r < 200)] = 0  # no echo at these depths: the field falls apart in two
    cone = find_cone(frames, [geom["region"]])
    assert cone.kind == "sector" and mask_iou(cone.mask(truth.shape), truth) >= 0.97
    # without a region the islands are not joined (text could be among them): a flagged hull
    alone = find_cone(frames)
    assert alone.kind == "hull" and alone.flag


def test_low_gain_frame_on_a_clean_background():
    geom = FAMILIES["sector-75"]
    frames, truth, marks = make_frames(geom, n_frames=1, seed=11)
    f = frames[0].astype(float)
    f[truth] *= 0.12  # two thirds of the field under grey level 8; the background is 0
    frame = f.astype(np.uint8)
    assert (frame[truth] <= 8).mean() > 0.6
    cone = find_cone(frame)
    assert cone.kind == "sector" and mask_iou(cone.mask(truth.shape), truth) >= 0.97
    assert not (cone.mask(truth.shape) & marks).any()


def test_static_marks_are_not_foreground_in_a_moving_clip():
    from echoavc.cone.field import foreground as _foreground

    frames, truth, marks = make_frames(FAMILIES["sector-75"], n_frames=6, seed=12, overlays=True)
    fg = _foreground(frames, ConeSettings(), k_open=5)
    text = (frames.min(axis=0) == 230) & ~truth  # static white text, dots and markers
    assert text.sum() > 200 and not fg[text].any()
    assert fg[truth].mean() > 0.9
    # a large patch of tissue that stays still is not taken for a mark
    still = make_frames(FAMILIES["sector-75"], n_frames=6, seed=12, still_top=True)[0]
    assert _foreground(still, ConeSettings(), k_open=5)[truth].mean() > 0.9


def test_valid_region_validates_against_the_pixel_matrix():
    shape = (240, 320)
    assert valid_region(None, shape) is None
    assert valid_region([], shape) is None
    assert valid_region([(84, 31, 595, 414)], shape) is None  # mostly outside (a rescaled file)
    assert valid_region([(10, 10, 30, 30)], shape) is None  # tiny
    assert valid_region([(30, 20, 10, 200)], shape) is None  # inverted
    assert valid_region([(-5, 10, 300, 250)], shape) == (0, 10, 301, 240)  # clipped, exclusive ends
    assert valid_region([(0, 0, 100, 100), (20, 20, 310, 230)], shape) == (20, 20, 311, 231)  # the largest
    strict = ConeSettings(min_region_inside=1.0)
    assert valid_region([(-5, 10, 300, 250)], shape, strict) is None


def test_blank_frames_raise():
    with pytest.raises(EchoAVCError, match="no ultrasound cone found"):
        find_cone(np.zeros((4, 120, 160), np.uint8))
    with pytest.raises(EchoAVCError, match="blank"):
        find_cone(np.full((120, 160, 3), 5, np.uint8))


def test_tiny_field_raises():
    geom = dict(kind="sector", apex=(240, 20), angles=(-20, 20), radii=(0, 70))  # ~1% of the image
    frames, truth, _ = make_frames(geom, seed=4)
    assert truth.mean() < 0.02
    with pytest.raises(EchoAVCError, match="no ultrasound cone found: .*covers"):
        find_cone(frames)


def test_text_alone_is_not_a_cone():
    frames, _, _ = make_frames(FAMILIES["sector-75"], seed=5)
    only_marks = np.where(frames == 230, frames, 0).astype(np.uint8)
    with pytest.raises(EchoAVCError, match="no ultrasound cone found"):
        find_cone(only_marks)


@pytest.mark.parametrize("shape_kind", ["ring", "down-triangle"])
def test_implausible_field_gives_a_flagged_hull(shape_kind):
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    if shape_kind == "ring":
        r = np.hypot(xx - 200, yy - 150)
        field = (r > 60) & (r < 130)
    else:  # apex at the bottom: no probe sits there
        field = (yy > 30) & (np.abs(xx - 200) < (280 - yy) * 0.8)
    rng = np.random.default_rng(0)
    frames = (rng.rayleigh(60, (4, h, w)) * field).clip(0, 255).astype(np.uint8)
    cone = find_cone(frames)
    assert cone.kind == "hull" and cone.source == "fallback"
    assert cone.flag
    assert cone.apex is None and cone.angles is None and cone.radii is None
    # the hull still covers the field
    assert np.count_nonzero(cone.mask((h, w)) & field) >= 0.99 * field.sum()


def test_frame_layouts_agree():
    geom = FAMILIES["sector-75"]
    frames, truth, _ = make_frames(geom, n_frames=1, seed=6)
    grey = frames[0]
    rgb = np.repeat(grey[..., None], 3, axis=2)
    cones = [find_cone(grey), find_cone(rgb), find_cone(grey[None]), find_cone(rgb[None])]
    assert all(c == cones[0] for c in cones)
    # 16-bit input is scaled, not rejected
    assert find_cone(grey.astype(np.uint16) * 200).kind == "sector"
    with pytest.raises(ValueError):
        find_cone(np.zeros((2, 3, 4, 5, 6), np.uint8))


def test_cone_is_found_from_a_sample_of_frames():
    geom = FAMILIES["sector-90"]
    frames, truth, _ = make_frames(geom, n_frames=40, seed=7)
    few = find_cone(frames, settings=ConeSettings(sample_frames=5))
    assert mask_iou(few.mask(truth.shape), truth) >= 0.97


def test_truth_mask_helper_is_sane():
    # guards the reference the other tests rely on
    m = truth_mask(dict(kind="sector", apex=(50, 0), angles=(-45, 45), radii=(0, 40)), (60, 100))
    area = np.pi * 40**2 / 4
    assert abs(m.sum() - area) < 0.03 * area
