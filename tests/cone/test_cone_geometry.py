import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cone_synth import truth_mask
from echoavc.cone import Cone, clip_polygon, mask_bbox, mask_iou, polygon_mask, sector_polygon
from echoavc.cone.geometry import ARC_SAGITTA


def brute_mask(poly, shape):
    """Even-odd point-in-polygon test at every pixel centre."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    inside = np.zeros(shape, bool)
    p = np.asarray(poly, float)
    for (x1, y1), (x2, y2) in zip(p, np.roll(p, -1, axis=0)):
        crosses = ((y1 <= yy) & (yy < y2)) | ((y2 <= yy) & (yy < y1))
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x1 + (yy - y1) / (y2 - y1) * (x2 - x1)
        inside ^= crosses & (xx < xi)
    return inside


coords = st.floats(-15, 75, allow_nan=False).map(lambda v: round(v * 4) / 4)  # quarter pixels hit centres too


@given(st.lists(st.tuples(coords, coords), min_size=3, max_size=9))
@settings(max_examples=150, deadline=None)
def test_polygon_mask_is_exact(poly):
    assert np.array_equal(polygon_mask(poly, (60, 50)), brute_mask(poly, (60, 50)))


@pytest.mark.parametrize(
    "geom",
    [
        dict(apex=(200.3, 10.7), angles=(-44.0, 41.0), radii=(0.0, 300.0)),
        dict(apex=(160.0, -120.0), angles=(-30.0, 30.0), radii=(150.0, 420.0)),
    ],
)
def test_sector_polygon_matches_the_sector_and_is_smooth(geom):
    poly = sector_polygon(geom["apex"], geom["angles"], geom["radii"])
    truth = truth_mask(dict(kind="sector", **geom), (320, 400))
    m = polygon_mask(poly, truth.shape)
    # only pixels whose centre sits within the chord sagitta of the arc can differ
    assert np.count_nonzero(m ^ truth) <= 0.002 * truth.sum()
    # chords stay within ARC_SAGITTA (a quarter pixel) of the far arc, and vertices lie on it
    outer = poly[: len(poly) // 2]
    assert np.allclose(np.hypot(*(outer - geom["apex"]).T), geom["radii"][1])
    mid = (outer[1:] + outer[:-1]) / 2
    r = np.hypot(*(mid - geom["apex"]).T)
    assert np.all(geom["radii"][1] - r <= ARC_SAGITTA + 1e-9)


def test_cone_round_trips_through_json_exactly():
    poly = sector_polygon((320.123456789, -40.5), (-37.25, 41.5), (60.0, 410.0))
    cone = Cone("sector", "us_region", tuple(map(tuple, poly)), (320.123456789, -40.5), (-37.25, 41.5), (60.0, 410.0), "")
    d = json.loads(json.dumps(cone.to_dict()))
    assert Cone.from_dict(d) == cone
    assert Cone.from_dict(d).to_dict() == cone.to_dict()
    hull = Cone("hull", "fallback", ((1, 2), (30, 4), (20, 40)), flag="no model fits")
    assert Cone.from_dict(json.loads(json.dumps(hull.to_dict()))) == hull
    assert hull.to_dict()["apex"] is None and isinstance(hull.polygon[0][0], float)


def test_cone_checks_its_fields():
    with pytest.raises(ValueError):
        Cone("fan", "image", ((0, 0), (1, 0), (0, 1)))
    with pytest.raises(ValueError):
        Cone("sector", "dicom", ((0, 0), (1, 0), (0, 1)))
    with pytest.raises(ValueError):
        Cone("hull", "fallback", ((0, 0), (1, 0)))


def test_mask_and_bbox_are_clipped_to_the_image():
    cone = Cone("rectangle", "image", ((-10.0, 5.0), (50.0, 5.0), (50.0, 80.0), (-10.0, 80.0)))
    m = cone.mask((60, 40))
    assert m.shape == (60, 40) and m.dtype == bool
    assert cone.bbox((60, 40)) == (0, 5, 40, 55)
    assert m[5:, :].all() and not m[:5].any()
    assert Cone("hull", "fallback", ((100, 100), (120, 100), (110, 120))).bbox((60, 40)) == (0, 0, 0, 0)


def test_mask_is_cached_and_read_only():
    cone = Cone("rectangle", "image", ((2.0, 3.0), (20.0, 3.0), (20.0, 9.0), (2.0, 9.0)))
    a, b = cone.mask((10, 30)), cone.mask((10, 30))
    assert a is b and not a.flags.writeable
    assert mask_bbox(a) == (2, 3, 18, 6) == cone.bbox((10, 30))


@pytest.mark.parametrize("rect", [(0, 0, 400, 320), (60, 25, 350, 300), (-5, -5, 120, 90)])
def test_clip_polygon_is_the_mask_intersection(rect):
    poly = sector_polygon((200.0, -60.0), (-38.0, 35.0), (110.0, 380.0))  # annular: not convex
    shape = (320, 400)
    x0, y0, x1, y1 = rect
    box = np.zeros(shape, bool)
    box[max(y0, 0) : y1, max(x0, 0) : x1] = True
    clipped = polygon_mask(clip_polygon(poly, rect), shape)
    assert np.array_equal(clipped, polygon_mask(poly, shape) & box)


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert math.isclose(mask_iou(a, b), 4 / 12)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 0.0
