"""Phase source 3: the valve itself, over the clip.

In a short-axis view at the valve level the closed cusps meet at the centre of the root (the bright
"Mercedes" sign); open, they lie against the wall and the centre is the dark orifice. So the mean grey level
of the centre of the valve box, frame by frame, rises and falls with the valve: frames near the clip's
brightest level are closed, frames near its darkest open, the frames between unknown. It needs a valve box
(the detector's, in predict) on most frames, at least three frames, and a clear difference between the
brightest and the darkest; it cannot tell which part of the cycle a closed frame belongs to, so its
end-diastole frame (the last closed frame before each opening) is coarse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echoavc.phase.timing import CLOSED, OPEN, UNKNOWN

__all__ = ["ImageReading", "CENTRE_SHARE", "MIN_CONTRAST", "valve_centre_signal", "read_valve_image"]

#: radius of the centre disc as a share of the valve box's shorter side
CENTRE_SHARE = 0.18
#: the least difference of grey levels between the brightest and darkest frames that counts as the valve moving
MIN_CONTRAST = 6.0
#: shares of the way from the darkest to the brightest level: at or above CLOSED_FROM closed, below OPEN_BELOW open
CLOSED_FROM, OPEN_BELOW = 0.6, 0.35


@dataclass
class ImageReading:
    states: list[str] | None  #: closed | open | unknown per frame, None when the image cannot tell
    end_diastole: list[int]
    how: str
    signal: np.ndarray | None = None  #: centre grey level per frame (NaN without an image)


def _grey(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=2) if img.ndim == 3 else img.astype(np.float32)


def valve_centre_signal(images, boxes) -> np.ndarray:
    """Mean grey level in a disc at the centre of the valve: the median of the frames' boxes (the valve
    barely moves within a clip; a frame without a box still has its centre measured)."""
    b = np.asarray([bx if bx is not None else [np.nan] * 4 for bx in boxes], dtype=float).reshape(-1, 4)
    good = np.isfinite(b).all(axis=1)
    if not good.any():
        return np.full(len(images), np.nan)
    x1, y1, x2, y2 = np.median(b[good], axis=0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = max(CENTRE_SHARE * min(x2 - x1, y2 - y1), 2.0)
    out = np.full(len(images), np.nan)
    for i, img in enumerate(images):
        g = _grey(np.asarray(img))
        h, w = g.shape
        ys, xs = np.ogrid[:h, :w]
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        if disc.any():
            out[i] = float(g[disc].mean())
    return out


def read_valve_image(images, boxes) -> ImageReading:
    """Valve state of each frame from the centre of the valve box over the clip."""
    n = len(images)
    if n < 3:
        return ImageReading(None, [], f"{n} frame(s): too few to see the valve move")
    n_boxed = sum(1 for bx in boxes if bx is not None and np.isfinite(np.asarray(bx, float)).all())
    if n_boxed < max(2, n // 2):
        return ImageReading(None, [], f"valve box on {n_boxed} of {n} frames")
    s = valve_centre_signal(images, boxes)
    lo, hi = float(np.nanmin(s)), float(np.nanmax(s))
    if not hi - lo >= MIN_CONTRAST:
        return ImageReading(None, [], f"valve centre steady (grey levels {lo:.0f}-{hi:.0f})", s)
    x = (s - lo) / (hi - lo)
    states = [CLOSED if v >= CLOSED_FROM else OPEN if v < OPEN_BELOW else UNKNOWN for v in x]
    ed = [i for i in range(n - 1) if states[i] == CLOSED and states[i + 1] in (OPEN, UNKNOWN)
          and OPEN in states[i + 1:i + 3]]
    return ImageReading(states, ed, f"valve centre over the clip (grey levels {lo:.0f}-{hi:.0f})", s)
