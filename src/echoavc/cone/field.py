"""The observed field of a clip: foreground over a sample of frames, edge pixels, and its blobs.

Steps 1 and 3 of ``cone.detect``: what can be echo signal (bright or moving, not a static overlay), which
pixels may carry the field's edge (not the faint JPEG fringe beside bright ones), and the cleaned blobs.
"""

from __future__ import annotations

from functools import lru_cache

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
        a = _brightest_channel(a)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        top = a.max()
        a = (a * (255.0 / top) if top > 0 else a).clip(0, 255).astype(np.uint8)
    return a


def _brightest_channel(a: np.ndarray) -> np.ndarray:
    """max over channels 0-2 of (F, H, W, C) frames: frame by frame with OpenCV for uint8 (twice numpy's speed
    on the strided channel views; reducing the last axis in numpy is 20x slower still)."""
    if a.dtype != np.uint8 or a.shape[-1] not in (3, 4):
        return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])
    out = np.empty(a.shape[:3], np.uint8)
    for frame, grey in zip(a, out):
        c = cv2.split(frame)
        cv2.max(c[0], c[1], dst=grey)
        cv2.max(grey, c[2], dst=grey)
    return out


def foreground(grey: np.ndarray, s: ConeSettings, k_open: int, mx: np.ndarray | None = None) -> np.ndarray:
    """Pixels that can be echo signal: bright in some frame or moving, and not a static overlay.

    ``mx``: ``grey.max(axis=0)`` when the caller has it already.
    """
    mx = grey.max(axis=0) if mx is None else mx
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
    largest = (8 * k_open) ** 2
    if np.count_nonzero(static) <= largest:
        fg &= ~static.view(bool)  # too few static pixels for any patch to be large: all are marks (no labelling)
        return fg
    labels, areas = components(static)
    small = areas <= largest
    small[0] = False
    if small.any():
        large = np.flatnonzero(~small[1:]) + 1
        if large.size <= 8:
            # the static pixels less those of the few large patches (most often none): whole-image
            # comparisons, cheaper than gathering the static pixels' labels (1.4 -> 0.1 ms on a 768x1024 clip)
            drop = static.view(bool).copy()
            for label in large:
                drop &= labels != label
            fg &= ~drop
        else:
            # looked up on the static pixels only (a few percent of the image)
            at = np.flatnonzero(static)
            fg.ravel()[at[small[labels.ravel()[at]]]] = False
    return fg


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels (0 = background) and each label's area.

    The same labels as cv2.connectedComponentsWithStats, whose other statistics cost five times the labelling;
    uint16 when they fit (histograms of them are then cheap), else int32.
    """
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n <= 65535:
        labels = labels.astype(np.uint16)
    return labels, label_counts(labels, n)


def label_counts(labels: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Pixels of each label 0..n-1 (within the uint8 mask ``where`` if given), int64."""
    if labels.dtype == np.uint16:
        if where is None:
            return cv2.calcHist([labels], [0], None, [n], [0, n]).ravel().astype(np.int64)
        # the labels outside ``where`` set to 0, then counted unmasked: calcHist's own mask costs twice that
        kept = np.zeros_like(labels)
        cv2.bitwise_and(labels, labels, dst=kept, mask=where)
        counts = cv2.calcHist([kept], [0], None, [n], [0, n]).ravel().astype(np.int64)
        counts[0] = np.count_nonzero(where) - counts[1:].sum()
        return counts
    lab = labels if where is None else labels[where.astype(bool)]
    return np.bincount(lab.ravel(), minlength=n)


#: The elliptic kernel of a dilation as the rectangles whose union it is (width, height): dilating by each
#: rectangle is separable, so the union is several times cheaper than the ellipse itself, and exactly equal.
@lru_cache(maxsize=8)
def _ellipse_rects(k: int) -> list[tuple[int, int]]:
    widths = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)).sum(axis=1)
    rects = []
    for w in sorted(set(widths.tolist())):
        rows = np.flatnonzero(widths >= w)
        rects.append((int(w), int(rows[-1] - rows[0] + 1)))
    return rects


def dilate_ellipse(img: np.ndarray, k: int) -> np.ndarray:
    """cv2.dilate by the k x k elliptic kernel, exactly, as a union of rectangle dilations."""
    return _rect_union(img, _ellipse_rects(k), cv2.dilate, cv2.max)


def _rect_union(img: np.ndarray, rects, op, combine) -> np.ndarray:
    """``op`` (cv2.dilate or cv2.erode) by the union of centred odd rectangles (w, h), widths rising and
    heights falling, combined by ``combine`` (cv2.max or cv2.min); exactly op by the union kernel.

    As a staircase: each width is reached from the last by a row pass of the difference, and each rectangle's
    extra height is applied once to the running union before the next (lower) one joins it, since a pass of
    a then of b is one of a + b - 1. The passes then sum to about the largest width and height, where
    one pass per rectangle summed all of them (k=33: 1.7 -> 1.0 ms on a 600x800 image)."""
    rects = sorted(rects)
    assert all(h1 >= h2 for (_, h1), (_, h2) in zip(rects, rects[1:])), rects
    out, row, width = None, img, 1
    for i, (w, h) in enumerate(rects):
        if w > width:
            row = op(row, cv2.getStructuringElement(cv2.MORPH_RECT, (w - width + 1, 1)))
            width = w
        out = row if out is None else combine(out, row)
        lower = rects[i + 1][1] if i + 1 < len(rects) else 1
        if h > lower:
            out = op(out, cv2.getStructuringElement(cv2.MORPH_RECT, (1, h - lower + 1)))
    return out


def _deeper_than(mask: np.ndarray, depth: int) -> np.ndarray:
    """cv2.distanceTransform(mask, DIST_L2, 3) > depth for a uint8 0/1 mask, as an erosion: that distance is the 3x3 chamfer
    distance (0.955 per step along an axis, 1.3693 diagonally, in 1/65536 fixed point) to the nearest 0 pixel
    inside the image, so the pixels deeper than ``depth`` are those whose octagon of that radius holds no 0
    pixel; the octagon as a union of rectangles, each a separable erosion (twice the transform's speed)."""
    out = _rect_union(mask, _chamfer_rects(depth), cv2.erode, cv2.min)
    return out.view(bool)  # the erosion of a 0/1 mask is 0/1


@lru_cache(maxsize=4)
def _chamfer_rects(depth: int) -> list[tuple[int, int]]:
    axial, diagonal = round(float(np.float32(0.955)) * 65536), round(float(np.float32(1.3693)) * 65536)
    r = depth + 1
    widths = []
    for dy in range(-r, r + 1):
        inside = [dx for dx in range(-r, r + 1)
                  if diagonal * min(abs(dx), abs(dy)) + axial * abs(abs(dx) - abs(dy)) <= depth * 65536]
        widths.append(2 * max(inside) + 1 if inside else 0)
    widths = np.array(widths)
    return [(int(w), int(np.count_nonzero(widths >= w))) for w in sorted(set(widths.tolist()) - {0})]


def _grey_level(mx: np.ndarray, level: int) -> int:
    """``level``, or lower where the background is cleaner: just above its noise.

    Low-gain frames keep much of their speckle under a fixed level; the background far from
    any signal (beyond JPEG ringing) shows how low the level can go.
    """
    above = cv2.compare(mx, level, cv2.CMP_GT)  # 0/255
    k = 4 * _JPEG_BLOCK + 1
    # Bounds on the far background from 2x2 blocks (a sixteenth of the work) often settle the answer exactly:
    # too little far background even at most, or one grey level all over it (often 0, black). The lower
    # bound only matters in the second case, so it is made only then.
    blocks = _blocks(above)
    far_most = _far_bound(blocks, k, mx.shape, surely=False)
    if np.count_nonzero(far_most) < 0.05 * mx.size:
        return level
    lo, hi, _, _ = cv2.minMaxLoc(mx, mask=far_most.view(np.uint8))
    if lo == hi and np.count_nonzero(_far_bound(blocks, k, mx.shape, surely=True)) >= 0.05 * mx.size:
        return int(min(level, lo + 2))  # the percentile of one value is that value
    # the histogram of the far pixels through OpenCV's mask (a boolean gather of them cost three times as much)
    far = cv2.compare(dilate_ellipse(above, k), 0, cv2.CMP_EQ)
    hist = cv2.calcHist([mx], [0], far, [256], [0, 256]).ravel().astype(np.int64)
    n = int(hist.sum())
    if n < 0.05 * mx.size:
        return level
    return int(min(level, _percentile_u8(hist, n, 99.5) + 2))


def _blocks(above: np.ndarray) -> np.ndarray:
    """Non-zero for each 2x2 block (the image padded with 0 to even sides) that holds a non-zero pixel: the
    block mean of the 0/255 image, which is at least 64 then (OpenCV's exact halving rounds (a+b+c+d+2)/4)."""
    h, w = above.shape
    a = cv2.compare(above, 0, cv2.CMP_GT)
    if h % 2 or w % 2:
        a = cv2.copyMakeBorder(a, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _far_bound(blocks: np.ndarray, k: int, shape, surely: bool) -> np.ndarray:
    """Bool (H, W): the pixels surely far (``surely``) or perhaps far, from the block image of ``_blocks``: far
    means no ``above`` pixel within the k x k ellipse. A block of ``above`` pixels reaches every pixel of another
    block when every offset between their pixels is in the ellipse, and may reach one when some offset is."""
    some, every = _block_kernels(k)
    reach = cv2.dilate(blocks, some if surely else every)
    # each block's answer on its 2x2 pixels (nearest-neighbour doubling: np.repeat's, at a fifth of its cost)
    big = cv2.resize((reach == 0).view(np.uint8), (2 * reach.shape[1], 2 * reach.shape[0]),
                     interpolation=cv2.INTER_NEAREST)
    return big[:shape[0], :shape[1]].view(bool)


@lru_cache(maxsize=4)
def _block_kernels(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Block offsets D (2x2 blocks) for which 2D + u is in the k x k ellipse for some / for every u in {-1,0,1}^2."""
    e = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)).astype(bool)
    r = k // 2
    m = (r + 1) // 2 + 1
    some = np.zeros((2 * m + 1, 2 * m + 1), np.uint8)
    every = np.zeros_like(some)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            hits = [abs(2 * dx + ux) <= r and abs(2 * dy + uy) <= r and e[2 * dy + uy + r, 2 * dx + ux + r]
                    for uy in (-1, 0, 1) for ux in (-1, 0, 1)]
            some[dy + m, dx + m], every[dy + m, dx + m] = any(hits), all(hits)
    return some, every


def _percentile_u8(hist: np.ndarray, n: int, q: float) -> float:
    """np.percentile (linear) of ``n`` uint8 values given by their histogram, without sorting them."""
    at = (n - 1) * (q / 100.0)
    lo = int(np.floor(at))
    cum = np.cumsum(hist)
    a = float(np.searchsorted(cum, lo, side="right"))
    b = float(np.searchsorted(cum, min(lo + 1, n - 1), side="right"))
    return a + (b - a) * (at - lo)


def strong_pixels(grey: np.ndarray, s: ConeSettings, mx: np.ndarray | None = None) -> np.ndarray:
    """Pixels bright enough beside their brightest neighbour to place the field's edges.

    JPEG ringing spreads a faint fringe up to a block beyond a bright edge, and over a clip's
    frames the fringe moves like speckle. It is faint only next to bright signal: a dim
    field part far from bright tissue still counts. ``mx``: ``grey.max(axis=0)`` when known.
    """
    mx = grey.max(axis=0) if mx is None else mx
    k = 2 * _JPEG_BLOCK - 1
    near = dilate_ellipse(mx, k)
    # mx > edge_contrast * near (in float32) as a table lookup: the least grey level above each level's share
    levels = np.arange(256, dtype=np.float32)
    least = np.argmax(levels[:, None] > s.edge_contrast * levels[None, :], axis=0)
    least[~(levels[:, None] > s.edge_contrast * levels[None, :]).any(axis=0)] = 256
    if least.max() <= 255:
        return mx >= cv2.LUT(near, least.astype(np.uint8))
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
        inside = _deeper_than(closed, _JPEG_BLOCK)
        closed &= (strong | inside).astype(np.uint8)
        opened = cv2.morphologyEx(closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open)))
        self.opened_labels, self.opened_areas = components(opened)
        self.field = self.deep = None
        if self.opened_areas.size < 2:
            return
        main = 1 + int(np.argmax(self.opened_areas[1:]))
        self.field = self.opened_labels == main
        self.labels, self.areas = components(closed)
        self.closed = closed
        self._outlines = None
        # the opened blob lies inside one closed blob
        self.main = int(self.labels.ravel()[int(np.argmax(self.field))])
        self.deep = self.labels == self.main
        self.min_area = k_close * k_close

    def union(self, min_area: int) -> tuple[np.ndarray, np.ndarray]:
        """All opened blobs of at least ``min_area`` pixels, and the closed blobs holding them."""
        big = self.opened_areas >= min_area
        big[0] = False
        field = big[self.opened_labels] | self.field
        held = np.zeros(self.areas.size, bool)
        held[self.labels[field]] = True
        held[0] = False
        return field, held[self.labels]

    def observed(self, model_mask: np.ndarray, field: np.ndarray, hull: np.ndarray | None = None,
                 box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The field a model is checked against: hull of the main blob and the blobs mostly inside the model.

        Dim or echo-free parts of a field (a lateral sector in low gain, the deep part of a
        single frame) break off the main blob; they still show where the field is. Text and
        marks outside the model do not count. ``hull``: the field's, when known; ``box``: (x0, y0, x1, y1), a
        window holding the whole model, where its blobs are counted.
        """
        sized = self.areas >= self.min_area
        sized[0] = False
        x0, y0, x1, y1 = box or (0, 0, model_mask.shape[1], model_mask.shape[0])
        inside = label_counts(self.labels[y0:y1, x0:x1], self.areas.size, model_mask[y0:y1, x0:x1].view(np.uint8))
        keep = (2 * inside >= self.areas) & sized
        # the hull of the field and the kept blobs from their outlines (the same hull as that of their
        # union's pixels, without making the union)
        points = [convex_hull(field) if hull is None else hull] + self.outlines(keep)
        hull = cv2.convexHull(np.concatenate(points))
        out = np.zeros(self.labels.shape, np.uint8)
        cv2.fillPoly(out, [hull], 1)
        return out.view(bool)  # 0/1

    def outlines(self, which: np.ndarray) -> list[np.ndarray]:
        """The boundary points (cv2 layout) of the closed blobs whose labels ``which`` (bool per label) marks,
        outer and hole outlines alike, label by label, each label's in findContours' order."""
        if self._outlines is None:
            contours, _ = cv2.findContours(self.closed, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            starts = np.array([c[0, 0] for c in contours], np.intp).reshape(-1, 2)
            self._outlines = (contours, self.labels[starts[:, 1], starts[:, 0]].astype(np.intp))
        contours, labels = self._outlines
        picked = np.flatnonzero(which[labels])
        return [contours[i] for i in picked[np.argsort(labels[picked], kind="stable")]]


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull (int pixel indices, cv2 layout) of a mask's outer contours."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.convexHull(np.concatenate(contours))

