"""Find the ultrasound cone (the image field) in a clip, and cut frames to it.

Route (paper, Fig. 2: edges, Hough lines for the sides, an arc for the far
boundary, a binary mask):

1. Foreground of a sample of frames: max over the frames above a low grey level
   (lowered to just above the background's noise when that is cleaner), plus
   moving speckle; static bright blobs (text, icons, depth dots) are dropped.
2. Only inside a valid SequenceOfUltrasoundRegions rectangle when there is one
   (it shuts out banners, text and other views); else the whole image.
3. Morphological close then open (drops strokes, ECG traces, callipers); the
   largest blob's convex hull is the observed field.
4. Hough lines on the hull's outline give the two sector sides, refined on the
   field's boundary pixels; they cross at the apex. The deepest field pixel per
   direction gives the far arc, a common nearest radius the near arc of curved
   arrays. A rectangle (linear probe) is fitted too.
5. A model is kept when it agrees with the observed field (IoU >=
   ``min_model_iou``, or it holds the whole field and IoU >= ``min_model_fill``:
   a dark or fading far field, flagged). Inside a region, a field broken into
   islands by dark depths is tried as a whole too. Otherwise the hull itself is
   returned with a flag.

Edges are placed on pixels that are not faint beside bright neighbours: JPEG
ringing leaves a moving fringe a few pixels wide around the field, which would
otherwise widen it and bridge it to an ECG trace close by.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..errors import EchoAVCError
from ..settings import STANDARD_SIZE, ConeSettings
from .geometry import Cone, clip_polygon, mask_bbox, mask_iou, polygon_mask, sector_polygon
from .transform import StandardTransform

#: Sector half-angles outside this range (degrees) are not believed.
_HALF_ANGLE = (5.0, 80.0)
#: A near arc closer to the apex than this share of the far radius is the apex itself
#: (rounded by the morphology, or a dead zone under the probe): the sector is drawn to the apex.
_MIN_NEAR_SHARE = 0.1
#: Fitted models agreeing with the field below this IoU (but above the acceptance level) get a flag.
_WARN_IOU = 0.95
#: Percentile over directions of the deepest field pixel that sets the far arc.
_FAR_QUANTILE = 90
#: JPEG block side: ringing spreads about this far from an edge.
_JPEG_BLOCK = 8
#: Share of the observed field a model must hold to be accepted below min_model_iou.
_MIN_HELD = 0.98


def find_cone(
    frames: np.ndarray,
    regions: Sequence[tuple[int, int, int, int]] | None = None,
    settings: ConeSettings = ConeSettings(),
) -> Cone:
    """The cone of a frame (H, W) / (H, W, 3) or of a sample of a clip's frames (F, H, W[, 3]), uint8.

    ``regions``: tissue rectangles from SequenceOfUltrasoundRegions as (x0, y0, x1, y1)
    inclusive, not yet validated. Raises EchoAVCError when no plausible field is there.
    """
    grey = _grey_sample(frames, settings.sample_frames)
    h, w = grey.shape[1:]
    # kernels scale with the image: text strokes and traces do
    k_open = max(3, int(round(min(h, w) * settings.morph_fraction)) | 1)
    k_close = max(3, (k_open // 2) | 1)
    fg = _foreground(grey, settings, k_open)
    if not fg.any():
        raise EchoAVCError(
            f"no ultrasound cone found: the frame is blank (no pixel above grey level {settings.foreground_level})"
        )
    strong = _strong(grey, settings)

    # a valid region is the scanner's own word on where the tissue is: search only there
    # (outside it lie banners, text and other views, which can look like a field)
    region = valid_region(regions, (h, w), settings)
    source = "image" if region is None else "us_region"
    x0, y0, x1, y1 = (0, 0, w, h) if region is None else region
    blobs = _Blobs(fg[y0:y1, x0:x1], strong[y0:y1, x0:x1], k_close, k_open)
    if blobs.field is None:
        raise EchoAVCError(f"no ultrasound cone found: nothing left in the {source} window after removing thin marks")
    edges = strong[y0:y1, x0:x1]

    # the largest blob first; inside a region (no text there) also all its sizeable blobs
    # together, for a dark field whose visible parts are islands (marks are far smaller)
    candidates = [lambda: (blobs.field, blobs.deep)]
    if region is not None:
        candidates.append(lambda: blobs.union(max(k_open * k_open, 0.02 * np.count_nonzero(blobs.field))))
    fallback = None
    for candidate in candidates:
        field, deep = candidate()
        hull = _hull(field)
        if cv2.contourArea(hull) < settings.min_area_fraction * h * w:
            continue
        best, best_iou = _best_model(field, hull, deep, edges, blobs, settings)
        if best is not None:
            return _cone_from_model(*best, (x0, y0), source)
        fallback = (hull, best_iou)  # the last (widest) candidate

    if fallback is None:
        share = cv2.contourArea(_hull(field)) / (h * w)
        raise EchoAVCError(
            f"no ultrasound cone found: the field in the {source} window covers {share:.1%} of the image "
            f"(needs {settings.min_area_fraction:.0%})"
        )
    hull, iou = fallback
    what = "no sector or rectangle fits" if iou is None else f"best sector/rectangle fit has IoU {iou:.2f}"
    flag = f"{what} (< {settings.min_model_iou:.2f}); convex hull of the moving/bright field used"
    doubts = hull_doubts(hull + np.array([x0, y0], hull.dtype), fg, (h, w))
    if doubts:
        flag = f"IMPLAUSIBLE field ({'; '.join(doubts)}): check the QC picture. {flag}"
    return Cone(kind="hull", source="fallback", polygon=_hull_outline(hull, (x0, y0)), flag=flag)


#: A fallback hull side lying on the image's border for this share of the border's length is not a field's
#: edge (a scanner draws no field along the frame) but a bar or trace there joined to the field.
HULL_MAX_BORDER_RUN = 0.3
#: A fallback hull holding less than this share of foreground pixels covers mostly dark image, not a field.
HULL_MIN_LIT = 0.5


def hull_doubts(hull: np.ndarray, foreground: np.ndarray, shape: tuple[int, int]) -> list[str]:
    """Why a fallback hull (cv2 points in image pixels) is not believable as the field: [] when it is."""
    h, w = shape
    pts = hull.reshape(-1, 2).astype(np.float64)
    doubts = []
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
        for name, on, side, length in (("left", max(ax, bx) <= 1, h, abs(by - ay)),
                                       ("right", min(ax, bx) >= w - 2, h, abs(by - ay)),
                                       ("top", max(ay, by) <= 1, w, abs(bx - ax)),
                                       ("bottom", min(ay, by) >= h - 2, w, abs(bx - ax))):
            if on and length >= HULL_MAX_BORDER_RUN * side:
                doubts.append(f"it runs along the image's {name} border for {length / side:.0%} of it")
    inside = np.zeros(shape, np.uint8)
    cv2.fillPoly(inside, [hull.reshape(-1, 1, 2).astype(np.int32)], 1)
    lit = np.count_nonzero(foreground & inside.astype(bool)) / max(1, np.count_nonzero(inside))
    if lit < HULL_MIN_LIT:
        doubts.append(f"{1 - lit:.0%} of it is dark")
    return doubts


def _best_model(field, hull, deep, edges, blobs: "_Blobs", settings: ConeSettings):
    """The sector or rectangle that agrees best with what is seen, if one is good enough.

    Returns ((model, polygon, iou) or None, the best IoU of any fit or None).
    """
    accepted, best_iou = [], None
    for model in (_fit_sector(field, hull, deep, edges), _fit_rectangle(field & edges)):
        if model is None:
            continue
        poly = clip_polygon(model["polygon"], (0, 0, field.shape[1], field.shape[0]))
        if len(poly) < 3:
            continue
        model_mask = polygon_mask(poly, field.shape)
        seen = blobs.observed(model_mask, field)
        iou = mask_iou(model_mask, seen)
        held = np.count_nonzero(seen & model_mask) / np.count_nonzero(seen)
        best_iou = iou if best_iou is None else max(best_iou, iou)
        # a dark or fading far field leaves a right model emptier than the field's hull:
        # still take it when it holds the whole field (it gets a flag)
        if iou >= settings.min_model_iou or (held >= _MIN_HELD and iou >= settings.min_model_fill):
            accepted.append((model, poly, iou))
    return (max(accepted, key=lambda a: a[2]) if accepted else None), best_iou


def standardise(
    frame: np.ndarray, cone: Cone, size: int = STANDARD_SIZE, *, mask: np.ndarray | None = None
) -> tuple[np.ndarray, StandardTransform]:
    """Black out everything outside the cone, crop to its bbox, letterbox to size x size undistorted.

    ``mask``: ``cone.mask(frame.shape)`` computed once per clip (``Cone.mask`` caches it anyway).
    """
    shape = frame.shape[:2]
    if mask is None:
        mask = cone.mask(shape)
    elif mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match frame {shape}")
    box = mask_bbox(mask)
    if box[2] == 0:
        raise EchoAVCError("the ultrasound cone lies outside the frame")
    t = StandardTransform.fit(*box, size)
    x, y, bw, bh = box
    # the transform reads a square window around the box; outside the box all is outside the cone
    out = np.zeros_like(frame)
    m = mask[y : y + bh, x : x + bw]
    crop = frame[y : y + bh, x : x + bw]
    out[y : y + bh, x : x + bw] = crop * (m[..., None] if crop.ndim == 3 else m)
    return t.apply(out), t


def valid_region(regions, shape: tuple[int, int], settings: ConeSettings = ConeSettings()):
    """The largest trustworthy region as a window (x0, y0, x1, y1), exclusive ends; None if none.

    Regions are clipped to the image; ones mostly outside it (files cropped or rescaled after
    the regions were written) or tiny are ignored.
    """
    if not regions:
        return None
    h, w = shape
    best = None
    for reg in regions:
        try:
            x0, y0, x1, y1 = (int(round(float(v))) for v in reg)
        except (TypeError, ValueError):
            continue
        if x1 < x0 or y1 < y0:
            continue
        full = (x1 - x0 + 1) * (y1 - y0 + 1)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w - 1) + 1, min(y1, h - 1) + 1
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        area = (cx1 - cx0) * (cy1 - cy0)
        if area < settings.min_region_inside * full or area < settings.min_region_fraction * h * w:
            continue
        if best is None or area > best[0]:
            best = (area, (cx0, cy0, cx1, cy1))
    return None if best is None else best[1]


# --- steps -------------------------------------------------------------------------------------


def _grey_sample(frames: np.ndarray, n: int) -> np.ndarray:
    """(F, H, W) uint8 from any accepted layout, at most ``n`` evenly spaced frames."""
    a = np.asarray(frames)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 4:
        a = a[None]  # one colour frame (H, W, 3|4)
    if a.ndim not in (3, 4) or a.shape[1] == 0 or a.shape[2] == 0 or a.shape[0] == 0:
        raise ValueError(f"expected (H, W), (H, W, 3), (F, H, W) or (F, H, W, 3) frames, got {np.shape(frames)}")
    if a.shape[0] > n > 0:
        a = a[np.linspace(0, a.shape[0] - 1, n).round().astype(int)]
    if a.ndim == 4:
        # brightest channel: colour Doppler and tinted maps are signal too
        a = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])  # (reducing the last axis is 20x slower)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        top = a.max()
        a = (a * (255.0 / top) if top > 0 else a).clip(0, 255).astype(np.uint8)
    return a


def _foreground(grey: np.ndarray, s: ConeSettings, k_open: int) -> np.ndarray:
    """Pixels that can be echo signal: bright in some frame or moving, and not a static overlay."""
    mx = grey.max(axis=0)
    fg = mx > _grey_level(mx, s.foreground_level)
    if grey.shape[0] < 3:
        return fg  # two frames can be alike by chance: too little to call anything static
    rng = mx - grey.min(axis=0)
    # a clip that hardly moves (a still exported as frames) has no motion to go by; in real
    # clips most of the field changes (speckle decorrelates, JPEG re-encodes)
    if np.count_nonzero((rng > s.foreground_level) & fg) < 0.5 * np.count_nonzero(fg):
        return fg
    # speckle that moves is field even where it stays under the grey level
    fg |= rng > s.motion_level
    # bright pixels that never change are text, icons, dots and scales: small blobs (a large
    # static patch is tissue that happened to stay still, and stays)
    static = ((rng <= s.foreground_level) & (mx > s.overlay_level)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(static, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= (8 * k_open) ** 2
    small[0] = False
    fg &= ~small[labels]
    return fg


def _grey_level(mx: np.ndarray, level: int) -> int:
    """``level``, or lower where the background is cleaner: just above its noise.

    Low-gain frames keep much of their speckle under a fixed level; the background far from
    any signal (beyond JPEG ringing) shows how low the level can go.
    """
    k = 4 * _JPEG_BLOCK + 1
    far = cv2.dilate((mx > level).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) == 0
    if np.count_nonzero(far) < 0.05 * mx.size:
        return level
    return int(min(level, np.percentile(mx[far], 99.5) + 2))


def _strong(grey: np.ndarray, s: ConeSettings) -> np.ndarray:
    """Pixels bright enough beside their brightest neighbour to place the field's edges.

    JPEG ringing spreads a faint fringe up to a block beyond a bright edge, and over a clip's
    frames the fringe moves like speckle. It is faint only next to bright signal: a dim
    field part far from bright tissue still counts.
    """
    mx = grey.max(axis=0)
    k = 2 * _JPEG_BLOCK - 1
    near = cv2.dilate(mx, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return mx.astype(np.float32) > s.edge_contrast * near.astype(np.float32)


class _Blobs:
    """The cleaned foreground of one search window.

    ``field``: the largest blob after a close (joins speckle) and an open (drops text
    strokes, ECG traces, callipers, depth dots); its hull gives the sides.
    ``deep``: the closed-only blob around it, which keeps the thin streaks at a fading far
    edge that the open removes; it gives the far radius.
    ``labels``/``areas``: all closed blobs, for checking a model against what is seen.
    """

    def __init__(self, fg: np.ndarray, strong: np.ndarray, k_close: int, k_open: int):
        closed = cv2.morphologyEx(
            fg.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_close, k_close))
        )
        # drop the faint JPEG fringe along the field's border (it also bridges the field to an
        # ECG trace or text close by); faint pixels deeper inside, such as a dim lateral part
        # next to bright tissue, stay
        inside = cv2.distanceTransform(closed, cv2.DIST_L2, 3) > _JPEG_BLOCK
        closed &= (strong | inside).astype(np.uint8)
        opened = cv2.morphologyEx(closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open)))
        self.opened = opened
        n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
        self.field = self.deep = None
        if n < 2:
            return
        main = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        self.field = labels == main
        n, self.labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
        self.areas = stats[:, cv2.CC_STAT_AREA]
        i = np.flatnonzero(self.field.ravel())[0]
        self.main = int(self.labels.ravel()[i])  # the opened blob lies inside one closed blob
        self.deep = self.labels == self.main
        self.min_area = k_close * k_close

    def union(self, min_area: int) -> tuple[np.ndarray, np.ndarray]:
        """All opened blobs of at least ``min_area`` pixels, and the closed blobs holding them."""
        n, labels, stats, _ = cv2.connectedComponentsWithStats(self.opened, connectivity=8)
        big = stats[:, cv2.CC_STAT_AREA] >= min_area
        big[0] = False
        field = big[labels] | self.field
        held = np.zeros(self.areas.size, bool)
        held[self.labels[field]] = True
        held[0] = False
        return field, held[self.labels]

    def observed(self, model_mask: np.ndarray, field: np.ndarray) -> np.ndarray:
        """The field a model is checked against: hull of the main blob and the blobs mostly inside the model.

        Dim or echo-free parts of a field (a lateral sector in low gain, the deep part of a
        single frame) break off the main blob; they still show where the field is. Text and
        marks outside the model do not count.
        """
        inside = np.bincount(self.labels[model_mask], minlength=self.areas.size)
        keep = (2 * inside >= self.areas) & (self.areas >= self.min_area)
        keep[0] = False
        hull = _hull(keep[self.labels] | field)
        out = np.zeros(self.labels.shape, np.uint8)
        cv2.fillPoly(out, [hull], 1)
        return out.astype(bool)


def _hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull (int pixel indices, cv2 layout) of a mask's outer contours."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.convexHull(np.concatenate(contours))


def _fit_sector(field: np.ndarray, hull: np.ndarray, deep: np.ndarray, strong: np.ndarray) -> dict | None:
    """Sides from Hough lines on the hull outline, apex where they cross, radii from the field.

    The hull and the Hough lines come from the whole field (robust to its holes); where
    exactly the sides and arcs lie comes from its ``strong`` pixels (no JPEG fringe).
    """
    h, w = field.shape
    outline = np.zeros((h, w), np.uint8)
    cv2.polylines(outline, [hull], True, 255, 1)
    min_votes = max(15, int(0.08 * min(h, w)))
    lines = cv2.HoughLinesWithAccumulator(outline, 1, np.pi / 720, min_votes)
    if lines is None:
        return None
    lines = lines.reshape(-1, 3)
    lines = lines[np.argsort(-lines[:, 2], kind="stable")]
    oy, ox = np.nonzero(outline)
    opts = np.stack([ox, oy], axis=1).astype(np.float64)
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
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    dx, dy = xs + 0.5 - apex[0], ys + 0.5 - apex[1]
    ang = np.degrees(np.arctan2(dx, dy))
    keep = (ang >= angles[0]) & (ang <= angles[1])
    if np.count_nonzero(keep) < 50:
        return None
    xs, ys, ang = xs[keep], ys[keep], ang[keep]
    r = np.hypot(dx[keep], dy[keep])
    span = angles[1] - angles[0]
    nb = max(8, int(math.ceil(span / step)))
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


def _fit_rectangle(field: np.ndarray) -> dict | None:
    """Linear-probe field: median left/right ends over rows, top/bottom ends over columns."""
    rows = np.flatnonzero(field.any(axis=1))
    cols = np.flatnonzero(field.any(axis=0))
    if rows.size < 3 or cols.size < 3:
        return None
    fr = field[rows]
    left = np.argmax(fr, axis=1)
    right = field.shape[1] - 1 - np.argmax(fr[:, ::-1], axis=1)
    fc = field[:, cols]
    top = np.argmax(fc, axis=0)
    bottom = field.shape[0] - 1 - np.argmax(fc[::-1], axis=0)
    x0, x1 = float(np.median(left)), float(np.median(right)) + 1
    y0, y1 = float(np.median(top)), float(np.median(bottom)) + 1
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    return {"kind": "rectangle", "polygon": np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])}


def _cone_from_model(model: dict, poly: np.ndarray, iou: float, offset, source: str) -> Cone:
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


def _hull_outline(hull: np.ndarray, offset) -> tuple[tuple[float, float], ...]:
    """Hull through pixel centres -> outline around those pixels (half a pixel outwards)."""
    p = hull.reshape(-1, 2).astype(np.float64) + 0.5
    p += 0.5 * np.sign(p - p.mean(axis=0))
    return tuple((round(float(x + offset[0]), 3), round(float(y + offset[1]), 3)) for x, y in p)
