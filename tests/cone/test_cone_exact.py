"""The cone finder's shortcuts (issue 18) give exactly what the plain computations they replace give."""

import math

import cv2
import numpy as np
import pytest

from echoavc.cone.field import _percentile_u8, components, dilate_ellipse, strong_pixels
from echoavc.cone.fit import _extremes, _extremes_of
from echoavc.settings import ConeSettings


def sector_field(rng, h, w):
    """A sector-like mask (apex anywhere above), holes and speckle, and its apex and angles."""
    ax, ay = rng.uniform(-0.2, 1.2) * w, rng.uniform(-1.5, 0.3) * h
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    r, ang = np.hypot(xx - ax, yy - ay), np.degrees(np.arctan2(xx - ax, yy - ay))
    a0, a1 = sorted(rng.uniform(-60, 60, 2))
    a1 = max(a1, a0 + 2)
    mask = (r < rng.uniform(0.3, 1.5) * h + 50) & (ang > a0 - 5) & (ang < a1 + 5)
    mask &= rng.random((h, w)) > rng.choice([0, 0.05, 0.5])
    return mask, (ax, ay), (a0, a1)


@pytest.mark.parametrize("seed", range(40))
def test_extremes_from_the_rim_equal_those_of_every_pixel(seed):
    rng = np.random.default_rng(seed)
    mask, apex, angles = sector_field(rng, int(rng.integers(60, 300)), int(rng.integers(60, 400)))
    ys, xs = np.nonzero(mask)
    for last in (True, False):
        for step in (1.0, float(rng.uniform(0.3, 6))):
            nb = max(8, math.ceil((angles[1] - angles[0]) / step))
            fast = _extremes(mask, apex, angles, last, step)
            every = _extremes_of(xs, ys, mask.shape, apex, angles, last, nb)
            assert (fast is None) == (every is None)
            if fast is not None:
                assert np.array_equal(fast[0], every[0]) and np.array_equal(fast[1], every[1])


@pytest.mark.parametrize("k", [5, 15, 33])
def test_elliptic_dilation_as_rectangles(k):
    img = (np.random.default_rng(k).random((90, 120)) ** 8 * 255).astype(np.uint8)
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    assert np.array_equal(dilate_ellipse(img, k), cv2.dilate(img, ellipse))
    binary = (img > 200).astype(np.uint8)
    assert np.array_equal(dilate_ellipse(binary, k), cv2.dilate(binary, ellipse))


def test_percentile_from_a_histogram():
    rng = np.random.default_rng(0)
    for i in range(500):
        v = rng.rayleigh(rng.uniform(0.5, 20), int(rng.integers(1, 3000))).clip(0, 255).astype(np.uint8)
        assert _percentile_u8(np.bincount(v, minlength=256), v.size, 99.5) == pytest.approx(np.percentile(v, 99.5),
                                                                                            abs=1e-9)


def test_components_and_strong_pixels_as_opencv_and_the_float_test_give_them():
    rng = np.random.default_rng(1)
    mask = (rng.random((200, 300)) > 0.6).astype(np.uint8)
    labels, areas = components(mask)
    n, ref, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    assert np.array_equal(labels, ref) and np.array_equal(areas, stats[:, cv2.CC_STAT_AREA])
    grey = (rng.random((3, 200, 300)) ** 3 * 255).astype(np.uint8)
    for s in (ConeSettings(), ConeSettings(edge_contrast=0.37)):
        mx = grey.max(axis=0)
        near = cv2.dilate(mx, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
        assert np.array_equal(strong_pixels(grey, s), mx.astype(np.float32) > s.edge_contrast * near.astype(np.float32))


@pytest.mark.parametrize("seed", range(30))
def test_background_level_and_its_block_bounds(seed):
    from echoavc.cone.field import _blocks, _far_bound, _grey_level

    rng = np.random.default_rng(seed)
    h, w = rng.integers(40, 260, 2)
    mx = (rng.random((h, w)) ** rng.uniform(1, 30) * 255).astype(np.uint8)
    if seed % 2:
        mx[rng.random((h, w)) < 0.7] = 0
    if seed % 3 == 0:
        mx[:] = 0
        mx[h // 3: h // 2, w // 4: w // 2] = 90  # a lit patch on black: the block bounds decide
    above = (mx > 8).astype(np.uint8)
    far = cv2.dilate(above, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (33, 33))) == 0
    blocks = _blocks(above)
    least, most = (_far_bound(blocks, 33, above.shape, surely=s) for s in (True, False))
    assert not (least & ~far).any() and not (far & ~most).any()
    plain = 8 if np.count_nonzero(far) < 0.05 * mx.size else int(min(8, np.percentile(mx[far], 99.5) + 2))
    assert _grey_level(mx, 8) == plain


def test_depth_as_an_erosion_is_the_distance_transform():
    from echoavc.cone.field import _deeper_than

    rng = np.random.default_rng(2)
    for i in range(60):
        h, w = rng.integers(5, 150, 2)
        m = (rng.random((h, w)) > rng.uniform(0.0, 0.4)).astype(np.uint8)
        if i % 2:
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        for depth in (3, 8):
            assert np.array_equal(_deeper_than(m, depth), cv2.distanceTransform(m, cv2.DIST_L2, 3) > depth)


def test_brightest_channel_is_the_channel_maximum():
    from echoavc.cone.field import _brightest_channel

    rng = np.random.default_rng(3)
    for shape in [(1, 60, 80, 3), (4, 31, 17, 4), (2, 1, 1, 3), (1, 5, 1, 4)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        a[..., -1] = 255  # an alpha channel at its top must not count
        want = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2]) if shape[-1] == 4 else a.max(axis=-1)
        assert np.array_equal(_brightest_channel(a), want)
        assert np.array_equal(_brightest_channel(a[:, ::-1]), want[:, ::-1])  # a strided view too


@pytest.mark.parametrize("seed", range(6))
def test_static_overlays_dropped_as_the_plain_rule_says(seed):
    from echoavc.cone.field import _grey_level, foreground

    rng = np.random.default_rng(seed)
    h, w = 120, 160
    grey = (rng.random((5, h, w)) * 60).astype(np.uint8)  # moving speckle
    for _ in range(int(rng.integers(0, 30))):  # still bright patches, small (marks) and large (still tissue)
        y, x = rng.integers(0, h - 5), rng.integers(0, w - 5)
        side = int(rng.choice([2, 4, 40]))
        grey[:, y:y + side, x:x + side] = 200
    s, k_open = ConeSettings(), 3
    mx, mn = grey.max(axis=0), grey.min(axis=0)
    rng_ = mx - mn
    want = (mx > _grey_level(mx, s.foreground_level)) | (rng_ > s.motion_level)
    static = ((rng_ <= s.foreground_level) & (mx > s.overlay_level)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(static, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= (8 * k_open) ** 2
    small[0] = False
    want &= ~small[labels]
    assert np.array_equal(foreground(grey, s, k_open), want)


def test_label_counts_within_a_mask():
    from echoavc.cone.field import label_counts

    rng = np.random.default_rng(4)
    labels, _ = components((rng.random((90, 130)) > 0.55).astype(np.uint8))
    n = int(labels.max()) + 1
    for where in ((rng.random(labels.shape) > 0.3), np.zeros(labels.shape, bool), np.ones(labels.shape, bool)):
        want = np.bincount(labels[where].ravel(), minlength=n)
        assert np.array_equal(label_counts(labels, n, where.view(np.uint8)), want)
        box = (slice(7, 80), slice(3, 111))  # a window, as the model checks count them
        want = np.bincount(labels[box][where[box]].ravel(), minlength=n)
        assert np.array_equal(label_counts(labels[box], n, where[box].view(np.uint8)), want)


def test_rectangle_fit_reads_the_ends_numpy_finds():
    from echoavc.cone.fit import fit_rectangle

    rng = np.random.default_rng(5)
    for i in range(40):
        field = rng.random(tuple(rng.integers(3, 90, 2))) > rng.uniform(0.2, 0.97)
        rows, cols = np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))
        got = fit_rectangle(field)
        if rows.size < 3 or cols.size < 3:
            assert got is None
            continue
        fr, fc = field[rows], field[:, cols]
        x0, x1 = np.median(np.argmax(fr, axis=1)), np.median(field.shape[1] - 1 - np.argmax(fr[:, ::-1], axis=1)) + 1
        y0, y1 = np.median(np.argmax(fc, axis=0)), np.median(field.shape[0] - 1 - np.argmax(fc[::-1], axis=0)) + 1
        if x1 - x0 < 3 or y1 - y0 < 3:
            assert got is None
        else:
            assert np.array_equal(got["polygon"], [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
