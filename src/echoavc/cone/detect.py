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

Steps 1 and 3 are in ``cone.field``, step 4's fits in ``cone.fit``; this module chooses among them.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..errors import NoConeError
from ..settings import ConeSettings
from .field import Blobs, convex_hull, foreground, grey_sample, strong_pixels
from .fit import cone_from_model, fit_rectangle, fit_sector, hull_outline
from .geometry import Cone, clip_polygon, mask_iou, polygon_mask

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
    grey = grey_sample(frames, settings.sample_frames)
    h, w = grey.shape[1:]
    # kernels scale with the image: text strokes and traces do
    k_open = max(3, int(round(min(h, w) * settings.morph_fraction)) | 1)
    k_close = max(3, (k_open // 2) | 1)
    mx = grey.max(axis=0)
    fg = foreground(grey, settings, k_open, mx=mx)
    if not fg.any():
        raise NoConeError(
            f"no ultrasound cone found: the frame is blank (no pixel above grey level {settings.foreground_level})"
        )
    strong = strong_pixels(grey, settings, mx=mx)

    # a valid region is the scanner's own word on where the tissue is: search only there
    # (outside it lie banners, text and other views, which can look like a field)
    region = valid_region(regions, (h, w), settings)
    source = "image" if region is None else "us_region"
    x0, y0, x1, y1 = (0, 0, w, h) if region is None else region
    blobs = Blobs(fg[y0:y1, x0:x1], strong[y0:y1, x0:x1], k_close, k_open)
    if blobs.field is None:
        raise NoConeError(f"no ultrasound cone found: nothing left in the {source} window after removing thin marks")
    edges = strong[y0:y1, x0:x1]

    # the largest blob first; inside a region (no text there) also all its sizeable blobs
    # together, for a dark field whose visible parts are islands (marks are far smaller)
    candidates = [lambda: (blobs.field, blobs.deep)]
    if region is not None:
        candidates.append(lambda: blobs.union(max(k_open * k_open, 0.02 * np.count_nonzero(blobs.field))))
    fallback = None
    for candidate in candidates:
        field, deep = candidate()
        hull = convex_hull(field)
        if cv2.contourArea(hull) < settings.min_area_fraction * h * w:
            continue
        best, best_iou = _best_model(field, hull, deep, edges, blobs, settings)
        if best is not None:
            return cone_from_model(*best, (x0, y0), source)
        fallback = (hull, best_iou)  # the last (widest) candidate

    if fallback is None:
        share = cv2.contourArea(convex_hull(field)) / (h * w)
        raise NoConeError(
            f"no ultrasound cone found: the field in the {source} window covers {share:.1%} of the image "
            f"(needs {settings.min_area_fraction:.0%})"
        )
    hull, iou = fallback
    what = "no sector or rectangle fits" if iou is None else f"best sector/rectangle fit has IoU {iou:.2f}"
    flag = f"{what} (< {settings.min_model_iou:.2f}); convex hull of the moving/bright field used"
    doubts = hull_doubts(hull + np.array([x0, y0], hull.dtype), fg, (h, w))
    if doubts:
        flag = f"IMPLAUSIBLE field ({'; '.join(doubts)}): check the QC picture. {flag}"
    return Cone(kind="hull", source="fallback", polygon=hull_outline(hull, (x0, y0)), flag=flag)


#: A fallback hull side lying on the image's border for this share of the border's length is not a field's
#: edge (a scanner draws no field along the frame) but a bar or trace there joined to the field.
HULL_MAX_BORDER_RUN = 0.3
#: A fallback hull holding less than this share of foreground pixels covers mostly dark image, not a field.
HULL_MIN_LIT = 0.5


def hull_doubts(hull: np.ndarray, fg: np.ndarray, shape: tuple[int, int]) -> list[str]:
    """Why a fallback hull (cv2 points in image pixels) is not believable as the field, given the foreground
    ``fg`` (bool, image pixels): [] when it is."""
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
    lit = np.count_nonzero(fg & inside.astype(bool)) / max(1, np.count_nonzero(inside))
    if lit < HULL_MIN_LIT:
        doubts.append(f"{1 - lit:.0%} of it is dark")
    return doubts


def _best_model(field, hull, deep, edges, blobs: "Blobs", settings: ConeSettings):
    """The sector or rectangle that agrees best with what is seen, if one is good enough.

    Returns ((model, polygon, iou) or None, the best IoU of any fit or None).
    """
    accepted, best_iou = [], None
    for model in (fit_sector(field, hull, deep, edges), fit_rectangle(field & edges)):
        if model is None:
            continue
        poly = clip_polygon(model["polygon"], (0, 0, field.shape[1], field.shape[0]))
        if len(poly) < 3:
            continue
        model_mask = polygon_mask(poly, field.shape)
        (px0, py0), (px1, py1) = np.floor(poly.min(axis=0)), np.ceil(poly.max(axis=0))
        box = (max(0, int(px0)), max(0, int(py0)), int(px1), int(py1))  # the model's pixels lie inside it
        seen = blobs.observed(model_mask, field, hull, box)
        iou = mask_iou(model_mask, seen)
        held = np.count_nonzero(seen & model_mask) / np.count_nonzero(seen)
        best_iou = iou if best_iou is None else max(best_iou, iou)
        # a dark or fading far field leaves a right model emptier than the field's hull:
        # still take it when it holds the whole field (it gets a flag)
        if iou >= settings.min_model_iou or (held >= _MIN_HELD and iou >= settings.min_model_fill):
            accepted.append((model, poly, iou))
    return (max(accepted, key=lambda a: a[2]) if accepted else None), best_iou


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
