"""The observed field of a clip: foreground over a sample of frames, edge pixels, and its blobs.

Steps 1 and 3 of ``cone.detect``: what can be echo signal (bright or moving, not a static overlay), which
pixels may carry the field's edge (not the faint JPEG fringe beside bright ones), and the cleaned blobs.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..settings import ConeSettings

#: JPEG block side: ringing spreads about this far from an edge.
_JPEG_BLOCK = 8


def grey_sample(frames: np.ndarray, n: int) -> np.ndarray:
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


def foreground(grey: np.ndarray, s: ConeSettings, k_open: int) -> np.ndarray:
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


def strong_pixels(grey: np.ndarray, s: ConeSettings) -> np.ndarray:
    """Pixels bright enough beside their brightest neighbour to place the field's edges.

    JPEG ringing spreads a faint fringe up to a block beyond a bright edge, and over a clip's
    frames the fringe moves like speckle. It is faint only next to bright signal: a dim
    field part far from bright tissue still counts.
    """
    mx = grey.max(axis=0)
    k = 2 * _JPEG_BLOCK - 1
    near = cv2.dilate(mx, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return mx.astype(np.float32) > s.edge_contrast * near.astype(np.float32)


class Blobs:
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
        hull = convex_hull(keep[self.labels] | field)
        out = np.zeros(self.labels.shape, np.uint8)
        cv2.fillPoly(out, [hull], 1)
        return out.astype(bool)


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull (int pixel indices, cv2 layout) of a mask's outer contours."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.convexHull(np.concatenate(contours))

