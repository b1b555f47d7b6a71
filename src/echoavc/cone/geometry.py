"""The ultrasound cone (the image field) as a record, and the geometry behind it.

Coordinates are continuous pixel-edge coordinates (as in ``transform.py``):
pixel (i, j) covers [j, j+1) x [i, i+1) and belongs to a shape when its centre
(j + 0.5, i + 0.5) lies inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

KINDS = ("sector", "rectangle", "hull")
SOURCES = ("us_region", "image", "fallback")

#: Largest gap between an arc and its chords when an arc becomes polygon vertices (pixels):
#: smooth to well under a pixel, with few enough vertices to store a cone per manifest row.
ARC_SAGITTA = 0.25


@dataclass(frozen=True)
class Cone:
    """Where the ultrasound image lies in a frame."""

    kind: str  #: "sector" (incl. annular sectors), "rectangle" (linear probe) or "hull" (fallback outline)
    source: str  #: "us_region", "image" or "fallback"
    polygon: tuple[tuple[float, float], ...]  #: closed outline (x, y), pixel-edge coordinates
    apex: tuple[float, float] | None = None  #: sector apex, may lie outside the image
    angles: tuple[float, float] | None = None  #: side directions, degrees from straight down, left < right
    radii: tuple[float, float] | None = None  #: (r_min, r_max) from the apex
    flag: str = ""  #: non-empty when the result is doubtful

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")
        poly = tuple((float(x), float(y)) for x, y in self.polygon)
        if len(poly) < 3:
            raise ValueError("a cone polygon needs at least 3 vertices")
        object.__setattr__(self, "polygon", poly)
        for name in ("apex", "angles", "radii"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, (float(v[0]), float(v[1])))
        object.__setattr__(self, "flag", str(self.flag))

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Bool (H, W), True inside the cone, clipped to the image.

        Cached per (polygon, shape), so every frame of a clip reuses one mask;
        the array is read-only because it is shared.
        """
        return _cached_mask(self.polygon, int(shape[0]), int(shape[1]))

    def bbox(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the mask; (0, 0, 0, 0) when the cone misses the image."""
        return mask_bbox(self.mask(shape))

    def to_dict(self) -> dict:
        def pair(v):
            return None if v is None else [v[0], v[1]]

        return {
            "kind": self.kind,
            "source": self.source,
            "polygon": [[x, y] for x, y in self.polygon],
            "apex": pair(self.apex),
            "angles": pair(self.angles),
            "radii": pair(self.radii),
            "flag": self.flag,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Cone":
        return cls(
            kind=d["kind"],
            source=d["source"],
            polygon=tuple((float(x), float(y)) for x, y in d["polygon"]),
            apex=None if d.get("apex") is None else tuple(d["apex"]),
            angles=None if d.get("angles") is None else tuple(d["angles"]),
            radii=None if d.get("radii") is None else tuple(d["radii"]),
            flag=d.get("flag", ""),
        )


def polygon_mask(polygon, shape: tuple[int, ...]) -> np.ndarray:
    """Bool (H, W): pixels whose centre lies inside ``polygon`` (even-odd rule).

    Exact scanline fill in pixel-edge coordinates; cv2.fillPoly would round
    vertices and also paint the outline, which biases masks by up to a pixel.
    """
    h, w = int(shape[0]), int(shape[1])
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    q = np.roll(p, -1, axis=0)
    out = np.zeros((h, w), dtype=bool)
    if h == 0 or w == 0 or len(p) < 3:
        return out
    lo, hi = np.minimum(p[:, 1], q[:, 1]), np.maximum(p[:, 1], q[:, 1])
    # only the rows an edge can cross
    i0 = max(0, int(math.floor(lo.min() - 0.5)))
    i1 = min(h, int(math.ceil(hi.max() + 0.5)))
    if i1 <= i0:
        return out
    # half-open crossing rule: every row meets an even number of edges; edge e crosses the rows
    # whose centre yc has lo[e] <= yc < hi[e] (listed per edge, not tested for every row and edge)
    first = np.clip(_first_row(lo), i0, i1)
    count = np.clip(_first_row(hi), i0, i1) - first
    count[count < 0] = 0
    total = int(count.sum())
    if total == 0:
        return out
    edges = np.repeat(np.arange(len(p)), count)
    rows = np.repeat(first - i0 - np.cumsum(count) + count, count) + np.arange(total)
    yc = rows + (i0 + 0.5)
    y1, y2 = p[edges, 1], q[edges, 1]
    x = p[edges, 0] + (yc - y1) / (y2 - y1) * (q[edges, 0] - p[edges, 0])
    order = np.lexsort((x, rows))
    rows, x = rows[order], x[order]
    r, xa, xb = rows[0::2], x[0::2], x[1::2]
    # pixel j is in when xa <= j + 0.5 < xb
    ja = np.clip(np.ceil(xa - 0.5), 0, w).astype(np.int64)
    jb = np.clip(np.ceil(xb - 0.5), 0, w).astype(np.int64)
    # sorted crossings make disjoint spans [ja, jb) of whole pixels: drawn as horizontal lines in one call
    # (exact for horizontal lines; a running sum over every pixel of every row took 2-5 ms)
    keep = jb > ja
    segs = np.empty((int(np.count_nonzero(keep)), 2, 2), np.int32)
    segs[:, 0, 0], segs[:, 1, 0] = ja[keep], jb[keep] - 1
    segs[:, 0, 1] = segs[:, 1, 1] = r[keep] + i0
    filled = np.zeros((h, w), np.uint8)
    cv2.polylines(filled, segs, False, 1)
    return filled.view(bool)


def _first_row(v: np.ndarray) -> np.ndarray:
    """The least integer i with i + 0.5 >= v, for each v (exactly that test, not the rounding of v - 0.5)."""
    i = np.ceil(v - 0.5)
    i = np.where(i - 0.5 >= v, i - 1, i)
    i = np.where(i + 0.5 >= v, i, i + 1)
    return i.astype(np.int64)


@lru_cache(maxsize=16)
def _cached_mask(polygon: tuple, h: int, w: int) -> np.ndarray:
    m = polygon_mask(polygon, (h, w))
    m.flags.writeable = False
    return m


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) integer bounding box of a bool mask; (0, 0, 0, 0) when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def arc_points(centre, radius: float, a0: float, a1: float, sagitta: float = ARC_SAGITTA) -> np.ndarray:
    """Points on an arc from angle a0 to a1 (degrees from straight down), chords within ``sagitta``."""
    cx, cy = centre
    if radius <= 0:
        return np.array([[cx, cy]], dtype=np.float64)
    step = 2 * math.acos(max(-1.0, 1 - sagitta / radius))
    n = max(1, int(math.ceil(abs(math.radians(a1 - a0)) / step)))
    t = np.radians(np.linspace(a0, a1, n + 1))
    return np.stack([cx + radius * np.sin(t), cy + radius * np.cos(t)], axis=1)


def sector_polygon(apex, angles, radii, sagitta: float = ARC_SAGITTA) -> np.ndarray:
    """Outline of an (annular) sector: the far arc left to right, then the near arc (or the apex) back."""
    a0, a1 = angles
    r0, r1 = radii
    outer = arc_points(apex, r1, a0, a1, sagitta)
    inner = arc_points(apex, r0, a1, a0, sagitta) if r0 > 0 else np.array([apex], dtype=np.float64)
    return np.concatenate([outer, inner])


def clip_polygon(polygon, rect) -> np.ndarray:
    """Clip a polygon to the rectangle (x0, y0, x1, y1) (Sutherland-Hodgman).

    Exact for convex polygons; for an annular sector it may leave zero-width
    bridges along the rectangle's border, which fill to nothing.
    """
    x0, y0, x1, y1 = map(float, rect)
    pts = [tuple(p) for p in np.asarray(polygon, dtype=np.float64).reshape(-1, 2)]
    # each clip edge: (inside test, intersection with the edge's line)
    planes = (
        (lambda p: p[0] >= x0, 0, x0),
        (lambda p: p[0] <= x1, 0, x1),
        (lambda p: p[1] >= y0, 1, y0),
        (lambda p: p[1] <= y1, 1, y1),
    )
    for inside, axis, v in planes:
        if not pts:
            break
        out = []
        prev = pts[-1]
        for cur in pts:
            cin, pin = inside(cur), inside(prev)
            if cin != pin:
                t = (v - prev[axis]) / (cur[axis] - prev[axis])
                q = (prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1]))
                out.append((v, q[1]) if axis == 0 else (q[0], v))
            if cin:
                out.append(cur)
            prev = cur
        pts = out
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of the same shape."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0
