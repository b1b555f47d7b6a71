"""Models of the field fitted to what is seen: a sector (Hough lines for the sides, the apex where they
cross, radii from the field) or a rectangle; and the Cone made from the one chosen (step 4 of ``cone.detect``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import Cone, sector_polygon

#: Sector half-angles outside this range (degrees) are not believed.
_HALF_ANGLE = (5.0, 80.0)
#: A near arc closer to the apex than this share of the far radius is the apex itself
#: (rounded by the morphology, or a dead zone under the probe): the sector is drawn to the apex.
_MIN_NEAR_SHARE = 0.1
#: Fitted models agreeing with the field below this IoU (but above the acceptance level) get a flag.
_WARN_IOU = 0.95
#: Percentile over directions of the deepest field pixel that sets the far arc.
_FAR_QUANTILE = 90


def fit_sector(field: np.ndarray, hull: np.ndarray, deep: np.ndarray, strong: np.ndarray) -> dict | None:
    """Sides from Hough lines on the hull outline, apex where they cross, radii from the field.

    The hull and the Hough lines come from the whole field (robust to its holes); where
    exactly the sides and arcs lie comes from its ``strong`` pixels (no JPEG fringe).
    """
    h, w = field.shape
    min_votes = max(15, int(0.08 * min(h, w)))
    lines, opts = _hough_sides(hull, (h, w), min_votes)
    if lines is None:
        return None
    contours, _ = cv2.findContours((field & strong).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    edge = np.concatenate(contours).reshape(-1, 2).astype(np.float64)
    c = hull.reshape(-1, 2).mean(axis=0)

    sides = {}
    for rho, theta, _ in lines:
        n = np.array([math.cos(theta), math.sin(theta)])
        out = n if n @ c - rho < 0 else -n  # normal pointing away from the field
        side = "left" if out[0] < 0 else "right"
        if side in sides:
            continue
        half = math.degrees(math.atan2(-out[1], abs(out[0])))
        if not _HALF_ANGLE[0] <= half <= _HALF_ANGLE[1]:
            continue
        near = np.abs(opts @ n - rho) <= 1.5
        if near.sum() < min_votes:
            continue
        # the side must lie on its own half of the field (not a chord of the far arc)
        if (opts[near, 0].mean() < c[0]) != (side == "left"):
            continue
        line = _refine_line(edge, n, rho, out)
        if line is not None:
            sides[side] = line
        if len(sides) == 2:
            break
    if len(sides) < 2:
        return None

    (pl, dl), (pr, dr) = sides["left"], sides["right"]
    den = dl[0] * dr[1] - dl[1] * dr[0]
    if abs(den) < math.sin(math.radians(5)):
        return None  # parallel sides: not a sector
    t = ((pr[0] - pl[0]) * dr[1] - (pr[1] - pl[1]) * dr[0]) / den
    apex = pl + t * dl
    a_left = math.degrees(math.atan2(dl[0], dl[1]))
    a_right = math.degrees(math.atan2(dr[0], dr[1]))
    if not (apex[1] < c[1] and a_left < 0 < a_right and a_right - a_left >= 2 * _HALF_ANGLE[0]):
        return None

    radii = _radii(field & strong, deep & strong, apex, (a_left, a_right))
    if radii is None:
        return None
    return {
        "kind": "sector",
        "polygon": sector_polygon(apex, (a_left, a_right), radii),
        "apex": (float(apex[0]), float(apex[1])),
        "angles": (a_left, a_right),
        "radii": radii,
    }


#: Hough angle step (radians), and the normal directions a side can have: a half-angle of
#: _HALF_ANGLE degrees on either side, on that grid (steps 0-322 and 398-719: up to 80.5 and from 99.5 degrees).
_THETA = np.pi / 720
_THETA_RANGES = ((0.0, 322 * _THETA), (398 * _THETA, 719 * _THETA))


def _hough_sides(hull: np.ndarray, shape: tuple[int, int], min_votes: int):
    """Hough lines (rho, theta, votes) on the hull's outline that can be a sector's side, strongest first,
    and the outline's pixels (x, y); (None, None) when there are none.

    Only the normal directions a side can have are voted on (the vote is the costly part), on an image
    that ends at the hull's far corner: it keeps the window's origin, so every rho and vote is as on
    the whole window (a crop from the hull's near corner would round rho differently and could choose
    another side on a real field).
    """
    x1, y1 = hull.reshape(-1, 2).max(axis=0) + 1
    outline = np.zeros((min(int(y1), shape[0]), min(int(x1), shape[1])), np.uint8)
    cv2.polylines(outline, [hull], True, 255, 1)
    found = [cv2.HoughLinesWithAccumulator(outline, 1, _THETA, min_votes, min_theta=lo, max_theta=hi)
             for lo, hi in _THETA_RANGES]
    found = [f.reshape(-1, 3) for f in found if f is not None]
    if not found:
        return None, None
    lines = np.concatenate(found)
    lines = lines[np.argsort(-lines[:, 2], kind="stable")]
    opts = cv2.findNonZero(outline).reshape(-1, 2).astype(np.float64)
    return lines, opts


def _refine_line(edge: np.ndarray, n: np.ndarray, rho: float, out: np.ndarray, tol: float = 10.0):
    """Robust line through the field's boundary pixels along a Hough side, in pixel-edge coordinates.

    The hull touches the outermost bumps (JPEG fringe and blocks, a stray blob); the boundary
    pixels within ``tol`` inside it follow the true edge, and a Huber fit then a trimmed
    least-squares fit ignore the bumps. Boundary pixel centres lie on average half a pixel
    step inside the edge, so the line moves out by that much.
    Returns (point, unit direction pointing down), or None.
    """
    s = (edge @ n - rho) * (1.0 if out @ n > 0 else -1.0)  # outward distance from the hull line
    pts = edge[(s >= -tol) & (s <= 1.0)] + 0.5
    if len(pts) < 10:
        return None
    p0, d = _fit_line(pts, cv2.DIST_HUBER)
    pts = pts[np.abs((pts - p0) @ np.array([-d[1], d[0]])) <= 1.5]  # trim to the edge itself
    if len(pts) < 10:
        return None
    p0, d = _fit_line(pts, cv2.DIST_L2)
    if d[1] < 0:
        d = -d
    nrm = np.array([-d[1], d[0]])
    if nrm @ out < 0:
        nrm = -nrm
    return p0 + 0.5 * max(abs(nrm[0]), abs(nrm[1])) * nrm, d


def _fit_line(pts: np.ndarray, dist: int):
    """(point, unit direction) of cv2.fitLine."""
    vx, vy, x0, y0 = cv2.fitLine(pts.astype(np.float32), dist, 0, 0.01, 0.01).ravel()
    return np.array([x0, y0], dtype=np.float64), np.array([vx, vy], dtype=np.float64) / math.hypot(vx, vy)


def _radii(field: np.ndarray, deep: np.ndarray, apex: np.ndarray, angles: tuple[float, float]):
    """(r_min, r_max) of the field about the apex, within the sides.

    Far (from ``deep``): per 1-degree direction the deepest field pixel; the 90th percentile
    over directions (a fading far field, e.g. one frame of a deep view, is still drawn to its
    deepest signal; one stray streak is not). Directions whose deepest pixel touches the window
    border only bound the radius from below. Near (from ``field``): the median nearest field
    pixel, when the directions agree on it (an arc about the apex, as curved arrays have); a
    flat or ragged top (probe-face line, dark near field) is drawn to the apex instead.
    """
    far = _extremes(deep, apex, angles, last=True)
    near = _extremes(field, apex, angles, last=False)
    if far is None or near is None:
        return None
    deepest, clipped = far
    free = deepest[~clipped]
    if free.size >= max(3, 0.25 * deepest.size):
        r_far = float(np.percentile(free, _FAR_QUANTILE))
        if clipped.any():
            r_far = max(r_far, float(deepest[clipped].max()))
    else:
        r_far = float(deepest.max())
    r_far += 0.5  # pixel centre -> its far edge

    nearest, clipped = near
    free = nearest[~clipped]
    if free.size and np.median(free) * math.radians(1.0) < 2.0:
        # close to the apex a 1-degree direction is under 2 px wide, so its nearest pixel
        # scatters in radius: use directions about 2 px wide there
        step = math.degrees(2.0 / max(np.median(free), 1.0))
        nearest, clipped = _extremes(field, apex, angles, last=False, step=step)
        free = nearest[~clipped]
    r_near = 0.0
    if free.size >= max(3, 0.5 * nearest.size):
        q25, q50, q75 = np.percentile(free, [25, 50, 75])
        if q75 - q25 <= max(2.0, 0.05 * q50) and q50 >= _MIN_NEAR_SHARE * r_far:
            r_near = float(max(q50 - 0.5, 0.0))
    return (r_near, r_far)


def _extremes(mask: np.ndarray, apex, angles, last: bool, step: float = 1.0):
    """Per direction (``step`` degrees wide) within ``angles``: the farthest (or nearest) pixel's
    radius, and whether that pixel lies on the window border (the field may go on beyond it)."""
    span = angles[1] - angles[0]
    nb = max(8, int(math.ceil(span / step)))
    m8 = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    # The extreme pixel of a direction is always among these candidates (its result is exactly that of all
    # pixels, a tenth of them): pixels within _RIM of the mask's edge or the window's, and pixels closer to the
    # apex than _near_radius. A pixel farther from both has, within 2.9 px, a mask pixel of its own direction
    # that lies 1.25-2.75 px farther out (and one as much nearer): there a direction is wide enough (> 1.6 px)
    # for a disc of 0.75 px, which holds a pixel centre, 2 px out (or in) and at most 0.8 px aside.
    # (all on the mask's bounding box: outside it the mask is empty, as the erosion's border is)
    x0, y0, bw, bh = cv2.boundingRect(m8)
    if bw == 0:
        return None
    m8 = m8[y0:y0 + bh, x0:x0 + bw]
    rim = cv2.subtract(m8, cv2.erode(m8, np.ones((2 * _RIM + 1,) * 2, np.uint8),
                                     borderType=cv2.BORDER_CONSTANT, borderValue=0))
    r0 = _near_radius(math.radians(span / nb))
    if r0 < 4 * max(mask.shape):
        close = np.zeros_like(m8)
        cv2.circle(close, (int(round(apex[0])) - x0, int(round(apex[1])) - y0), int(math.ceil(r0)) + 2, 1, -1)
        rim |= close & m8
    else:
        rim = m8.copy()  # (_screen may clear some of it)
    bound = _screen(rim, (x0, y0), apex, angles, last, nb)
    pts = cv2.findNonZero(rim)  # scan order, as np.nonzero
    if pts is None:
        return None
    pts = pts.reshape(-1, 2) + np.array([x0, y0], np.int32)
    xs, ys = pts[:, 0], pts[:, 1]
    if bound is None:
        found = _extremes_of(xs, ys, mask.shape, apex, angles, last, nb)
    else:
        dx, dy = xs + 0.5 - apex[0], ys + 0.5 - apex[1]
        r2 = dx * dx + dy * dy  # (np.hypot costs more than the angles; a milli-pixel of slack covers its rounding)
        sel = r2 >= (bound - 1e-3) ** 2 if last else r2 <= (bound + 1e-3) ** 2
        found = _extremes_of(xs[sel], ys[sel], mask.shape, apex, angles, last, nb, min_pixels=0)
    if found is None and len(pts) < np.count_nonzero(m8):
        ys, xs = np.nonzero(mask)  # too few candidates to tell: count every pixel, as the rule says
        found = _extremes_of(xs, ys, mask.shape, apex, angles, last, nb)
    return found


#: Candidate band of _extremes: pixels within this many px (Chebyshev) of the mask's edge.
_RIM = 3


def _near_radius(width: float) -> float:
    """Radius about the apex below which a direction ``width`` radians wide may hold no pixel centre
    within 2 px of a given radius (0.8 px of margin each side, 2 px inwards, 1 px for rounding)."""
    return 0.8 / math.sin(width / 2) + 3.0


#: _screen's first pass looks at every this-many-th row and column of the candidates.
_SCREEN_STEP = 3


def _screen(rim: np.ndarray, offset, apex, angles, last: bool, nb: int):
    """A radius no direction's extreme lies beyond (nearer than it for the farthest pixels, farther for the
    nearest), from a first pass over every _SCREEN_STEP-th row and column of the candidates ``rim`` (uint8, at
    ``offset``), whose candidates surely beyond it it clears (a disc drawn with 3 px to spare: its rounding
    and the apex's are under 2.5 px). A candidate beyond it cannot be any direction's extreme nor one of its
    ties, so the result is that of all candidates. None (rim untouched) when the first pass misses a direction
    or sees under 50 pixels inside the sides: then every candidate counts."""
    coarse = cv2.findNonZero(np.ascontiguousarray(rim[::_SCREEN_STEP, ::_SCREEN_STEP]))
    if coarse is None:
        return None
    coarse = coarse.reshape(-1, 2) * _SCREEN_STEP + np.array(offset, np.int32)
    per_direction = _extreme_bounds(coarse[:, 0], coarse[:, 1], apex, angles, last, nb)
    if per_direction is None:
        return None
    bound = float(per_direction.min() if last else per_direction.max())
    centre = (int(round(apex[0])) - offset[0], int(round(apex[1])) - offset[1])
    if max(abs(centre[0]), abs(centre[1]), bound) < 1 << 20:  # (cv2.circle's coordinates are bounded)
        if last and bound > 8:
            cv2.circle(rim, centre, int(bound) - 4, 0, -1)
        elif not last:
            disc = np.zeros_like(rim)
            cv2.circle(disc, centre, int(math.ceil(bound)) + 4, 1, -1)
            cv2.bitwise_and(rim, disc, dst=rim)
    return bound


def _extreme_bounds(xs, ys, apex, angles, last: bool, nb: int):
    """Per direction the farthest (nearest) radius among these pixels, None unless every direction has one and
    50 lie inside the sides. Pixels within 1e-9 degrees of a direction's edge are left out, so that a last-digit
    difference in another call's arctan2 cannot put a pixel counted here into another direction."""
    dx, dy = xs + 0.5 - apex[0], ys + 0.5 - apex[1]
    ang = np.degrees(np.arctan2(dx, dy))
    span = angles[1] - angles[0]
    at = (ang - angles[0]) / span * nb
    sure = (ang >= angles[0] + 1e-9) & (ang <= angles[1] - 1e-9) & (np.abs(at - np.round(at)) * span / nb > 1e-9)
    if np.count_nonzero(sure) < 50:
        return None
    b = np.minimum(at[sure].astype(np.int64), nb - 1)
    ext = np.full(nb, -np.inf if last else np.inf)
    (np.maximum if last else np.minimum).at(ext, b, np.hypot(dx[sure], dy[sure]))
    return ext if np.isfinite(ext).all() else None


def _extremes_of(xs, ys, shape, apex, angles, last: bool, nb: int, min_pixels: int = 50):
    """Per direction the extreme pixel's radius and border flag; None under ``min_pixels`` inside the sides."""
    h, w = shape
    dx, dy = xs + 0.5 - apex[0], ys + 0.5 - apex[1]
    ang = np.degrees(np.arctan2(dx, dy))
    keep = (ang >= angles[0]) & (ang <= angles[1])
    if np.count_nonzero(keep) < max(min_pixels, 1):
        return None
    xs, ys, ang = xs[keep], ys[keep], ang[keep]
    r = np.hypot(dx[keep], dy[keep])
    span = angles[1] - angles[0]
    b = np.minimum(((ang - angles[0]) / span * nb).astype(np.int64), nb - 1)
    # per-direction extreme by unbuffered reductions (a sort of the whole field took 40 ms a frame);
    # on ties the last pixel in scan order is the one whose border flag counts
    ext = np.full(nb, -np.inf if last else np.inf)
    (np.maximum if last else np.minimum).at(ext, b, r)
    hit = np.flatnonzero(r == ext[b])
    pick = np.full(nb, -1, np.int64)
    np.maximum.at(pick, b[hit], hit)
    pick = pick[pick >= 0]
    border = (xs[pick] == 0) | (xs[pick] == w - 1) | (ys[pick] == 0) | (ys[pick] == h - 1)
    return r[pick], border


def fit_rectangle(field: np.ndarray) -> dict | None:
    """Linear-probe field: median left/right ends over rows, top/bottom ends over columns."""
    rows = np.flatnonzero(field.any(axis=1))
    cols = np.flatnonzero(field.any(axis=0))
    if rows.size < 3 or cols.size < 3:
        return None
    left, right = _row_ends(field[rows])
    top, bottom = _row_ends(cv2.transpose(np.ascontiguousarray(field).view(np.uint8))[cols].view(bool))
    x0, x1 = float(np.median(left)), float(np.median(right)) + 1
    y0, y1 = float(np.median(top)), float(np.median(bottom)) + 1
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    return {"kind": "rectangle", "polygon": np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])}


def _row_ends(rows: np.ndarray):
    """Column of the first and of the last True in each row (each holding one), of a contiguous bool array.
    By rows of a transposed or flipped copy: numpy's argmax along columns or over reversed views cost twice."""
    first = np.argmax(rows, axis=1)
    last = rows.shape[1] - 1 - np.argmax(cv2.flip(rows.view(np.uint8), 1).view(bool), axis=1)
    return first, last


def cone_from_model(model: dict, poly: np.ndarray, iou: float, offset, source: str) -> Cone:
    ox, oy = offset
    flag = ""
    if iou < _WARN_IOU:
        flag = (
            f"fitted {model['kind']} agrees with the observed field only at IoU {iou:.2f} "
            "(dark or fading parts of the field, or marks attached to it)"
        )
    apex = model.get("apex")
    return Cone(
        kind=model["kind"],
        source=source,
        # a thousandth of a pixel is plenty, and keeps the JSON short
        polygon=tuple((round(float(x + ox), 3), round(float(y + oy), 3)) for x, y in poly),
        apex=None if apex is None else (apex[0] + ox, apex[1] + oy),
        angles=model.get("angles"),
        radii=model.get("radii"),
        flag=flag,
    )


def hull_outline(hull: np.ndarray, offset) -> tuple[tuple[float, float], ...]:
    """Hull through pixel centres -> outline around those pixels (half a pixel outwards)."""
    p = hull.reshape(-1, 2).astype(np.float64) + 0.5
    p += 0.5 * np.sign(p - p.mean(axis=0))
    return tuple((round(float(x + offset[0]), 3), round(float(y + offset[1]), 3)) for x, y in p)
