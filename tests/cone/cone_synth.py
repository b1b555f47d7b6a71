"""Synthetic echo frames around a cone of known geometry, for the cone tests.

The truth mask is computed here from the geometry (pixel centres in polar coordinates),
independently of echoavc's own polygon rasteriser.
"""

from __future__ import annotations

import cv2
import numpy as np

WHITE = 230


def truth_mask(geom: dict, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies in the field: annular sector or rectangle, cut by ``region`` if given."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    if geom["kind"] == "rectangle":
        x0, y0, x1, y1 = geom["rect"]
        m = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    else:
        ax, ay = geom["apex"]
        a0, a1 = geom["angles"]
        r0, r1 = geom["radii"]
        dx, dy = xx - ax, yy - ay
        r = np.hypot(dx, dy)
        ang = np.degrees(np.arctan2(dx, dy))
        m = (r >= r0) & (r <= r1) & (ang >= a0) & (ang <= a1)
    if "region" in geom:  # inclusive pixel rectangle, as in SequenceOfUltrasoundRegions
        x0, y0, x1, y1 = geom["region"]
        m &= (xx >= x0) & (xx < x1 + 1) & (yy >= y0) & (yy < y1 + 1)
    return m


def make_frames(
    geom: dict,
    shape: tuple[int, int] = (360, 480),
    n_frames: int = 6,
    seed: int = 0,
    colour: bool = False,
    dim_side: bool = False,
    still_top: bool = False,
    jpeg: int = 0,
    overlays: bool = True,
):
    """(frames, truth, marks): frames (F, H, W) or (F, H, W, 3) uint8, the true field, and the
    pixels of text, depth dots, probe marker and ECG trace (all outside the field).

    ``dim_side``: the field's lateral quarter in low gain (grey 1-8, moving).
    ``still_top``: the upper 40% of the field does not change over the clip (a still chest wall).
    ``jpeg``: pass every frame through JPEG at this quality (ringing beside edges and text).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    truth = truth_mask(geom, shape)
    keep_out = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0

    # tissue echogenicity: smooth, 0.35..1
    base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 14)
    base = 0.35 + 0.65 * (base - base.min()) / (np.ptp(base) + 1e-6)
    dim = np.zeros(shape, bool)
    if dim_side:  # a lateral band in low gain: never above grey 8, visible only as moving speckle
        ys, xs = np.nonzero(truth)
        band = xs < xs.min() + 0.25 * (xs.max() - xs.min())
        dim[ys[band], xs[band]] = True

    # dark cavities well inside the field (below the foreground level in single frames),
    # sized to the field as heart chambers are to the sector
    size = np.sqrt(truth.sum())
    b_max = int(0.10 * size)
    inner = cv2.erode(truth.astype(np.uint8), np.ones((4 * b_max + 1, 4 * b_max + 1), np.uint8)) > 0
    cav = []
    ys, xs = np.nonzero(inner)
    for _ in range(2 if ys.size else 0):
        i = rng.integers(ys.size)
        a, b = rng.uniform(0.04, 0.07) * size, rng.uniform(0.06, 0.10) * size
        cav.append((xs[i], ys[i], int(a), int(b), float(rng.uniform(0, 180))))

    marks = np.zeros(shape, np.uint8)
    if overlays:
        _draw_text(marks, w)
        _draw_marks(marks, geom, shape)
        marks[keep_out] = 0
        _draw_calliper(marks, geom, truth)  # the one mark that touches the field: crosses its edge

    frames = []
    for f in range(n_frames):
        speck = cv2.GaussianBlur(rng.rayleigh(1.0, shape).astype(np.float32), (0, 0), 0.8)
        img = 75.0 * speck * base
        holes = np.ones(shape, np.float32)
        for cx, cy, a, b, ang in cav:
            # the cavities beat: they move and change size over the clip
            cv2.ellipse(holes, (int(cx + 3 * np.sin(f)), int(cy + 2 * np.cos(f))), (a + f % 3, b), ang, 0, 360, 0.02, -1)
        img *= holes
        img[dim] = rng.integers(1, 9, np.count_nonzero(dim))
        img[~truth] = 0
        if still_top and frames:
            ys = np.flatnonzero(truth.any(axis=1))
            top = ys[0] + int(0.4 * (ys[-1] - ys[0]))
            first = frames[0] if frames[0].ndim == 2 else frames[0][..., 0]
            img[:top] = np.where(truth[:top], first[:top], img[:top])
        img = img.clip(0, 255).astype(np.uint8)
        ecg = np.zeros(shape, np.uint8)
        if overlays:
            _draw_ecg(ecg, shape, f, n_frames)
            ecg[keep_out] = 0
        if colour:
            rgb = np.repeat(img[..., None], 3, axis=2)
            rgb[marks > 0] = WHITE
            rgb[ecg > 0] = (0, 255, 0)
            if f % 2 == 0 and inner.any():  # a colour Doppler blob inside the field
                cy, cx = np.argwhere(inner)[len(np.argwhere(inner)) // 2]
                cv2.circle(rgb, (int(cx), int(cy)), 12, (200, 30, 30), -1)
            frames.append(rgb)
        else:
            img[marks > 0] = WHITE
            img[ecg > 0] = 255
            frames.append(img)
    if jpeg:
        frames = [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1], cv2.IMREAD_UNCHANGED)
                  for f in frames]
    all_marks = (marks > 0) & ~keep_out  # what lies inside the field (a calliper's end) may stay
    if overlays:
        ecg_all = np.zeros(shape, np.uint8)
        for f in range(n_frames):
            _draw_ecg(ecg_all, shape, f, n_frames)
        all_marks |= (ecg_all > 0) & ~keep_out
    return np.stack(frames), truth, all_marks


def _draw_text(img: np.ndarray, w: int) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "Adult Echo", (6, 18), font, 0.55, 255, 1, cv2.LINE_AA)
    cv2.putText(img, "S5-1 16cm", (6, 38), font, 0.45, 255, 1, cv2.LINE_AA)
    cv2.putText(img, "MI 1.2", (w - 70, 18), font, 0.45, 255, 1, cv2.LINE_AA)
    cv2.putText(img, "TIS 0.4", (w - 70, 38), font, 0.45, 255, 1, cv2.LINE_AA)
    cv2.putText(img, "72 bpm", (w - 70, img.shape[0] - 8), font, 0.45, 255, 1, cv2.LINE_AA)


def _draw_marks(img: np.ndarray, geom: dict, shape) -> None:
    """Depth-scale dots just outside the right edge of the field and a probe marker beside the top."""
    h, w = shape
    if geom["kind"] == "rectangle":
        x0, y0, x1, y1 = geom["rect"]
        for y in range(int(y0) + 5, int(y1), 20):
            cv2.rectangle(img, (int(x1) + 5, y), (int(x1) + 7, y + 2), 255, -1)
        cv2.circle(img, (int(x1) + 12, int(y0) + 8), 5, 255, -1)
        return
    if "region" in geom:  # dots right beside the region's edge, where a sector's corner touches it
        x1 = geom["region"][2]
        for y in range(geom["region"][1] + 5, geom["region"][3], 20):
            cv2.rectangle(img, (x1 + 2, y), (x1 + 3, y + 1), 255, -1)
    ax, ay = geom["apex"]
    a1 = np.radians(geom["angles"][1])
    r1 = geom["radii"][1]
    d = np.array([np.sin(a1), np.cos(a1)])
    nrm = np.array([np.cos(a1), -np.sin(a1)])  # outward normal of the right side
    for r in np.arange(max(geom["radii"][0], 20), r1, 25):
        p = np.array([ax, ay]) + r * d + 6 * nrm
        if 0 <= p[0] < w - 3 and 0 <= p[1] < h - 3:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[0]) + 2, int(p[1]) + 2), 255, -1)
    top = np.array([ax, ay]) + max(geom["radii"][0], 0) * d + 18 * nrm
    cx, cy = int(np.clip(top[0], 8, w - 8)), int(np.clip(top[1], 8, h - 8))
    cv2.circle(img, (cx, cy), 5, 255, -1)


def _draw_calliper(img: np.ndarray, geom: dict, truth: np.ndarray) -> None:
    """A 1-px measurement line from 25 px inside the field's right edge to 30 px beyond it."""
    ys, xs = np.nonzero(truth)
    y = int(np.median(ys)) - 20
    right = xs[ys == y].max() + 1
    cv2.line(img, (int(right - 25), y - 6), (int(right + 30), y + 7), 255, 1)


def _draw_ecg(img: np.ndarray, shape, f: int, n: int) -> None:
    """A 2-px ECG trace along the bottom, redrawn by a sweep every frame."""
    h, w = shape
    x = np.arange(8, w - 8)
    phase = 2 * np.pi * (x / 90.0)
    y = h - 24 - 10 * np.exp(-((np.mod(phase, 2 * np.pi) - 1.0) ** 2) / 0.02) - 2 * np.sin(phase)
    sweep = int((f + 1) / n * len(x))
    y[sweep:] += 3 * np.sin(0.3 * x[sweep:])  # the part not yet redrawn differs
    pts = np.stack([x, y], axis=1).round().astype(np.int32)
    cv2.polylines(img, [pts], False, 255, 2)
