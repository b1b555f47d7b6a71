"""Phase source 2: the ECG trace the scanner draws on screen, read from the original pixels before masking.

Scanners draw the ECG of the loop outside the image field, with a vertical marker at the current frame. On a
cine loop the trace stays put while the marker moves, so the per-pixel minimum over the clip's frames is the
trace alone and each frame's excess over it is its marker. The trace is the widest thin curve outside the
field (or inside the ECG region of Sequence of Ultrasound Regions, Region Data Type 9, where the header has
one); its R peaks are the tallest peaks of its upper edge (:func:`echoavc.phase.timing.r_peaks`), and the
marker's place between two R peaks is the frame's share of the R-R interval.

It cannot read a sweeping display that redraws the trace as it goes, a trace that touches the field, or a
single frame (no marker can be told from the trace).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from pydicom.dataset import Dataset

from echoavc.phase.timing import positions_from_fractions, r_peaks

__all__ = ["ECG_REGION_TYPE", "EcgArea", "EcgReading", "ecg_area", "read_ecg_trace"]

#: Region Data Type of an ECG trace in Sequence of Ultrasound Regions (PS3.3 C.8.5.5.1.2)
ECG_REGION_TYPE = 9
#: grey level above which a pixel outside the field is drawn (the screen around the field is near black)
LIT = 50
#: how much brighter than the clip's minimum a pixel must be to belong to a frame's own marker
MARKER_STEP = 40


@dataclass(frozen=True)
class EcgArea:
    """Where to look for the trace in a frame: a rectangle, and inside it the pixels that are not the field."""

    box: tuple[int, int, int, int]  #: x0, y0, x1, y1 (exclusive) in original pixels
    outside: np.ndarray  #: bool (y1-y0, x1-x0): True where a trace may be (not the image field)
    from_region: bool  #: the header's ECG region, not a search outside the field

    def focus(self, frame: np.ndarray) -> "EcgArea | None":
        """The area narrowed to the trace found in one frame (with room for the marker), so a long clip keeps
        only a strip per frame; None when the frame shows no trace."""
        comp = _trace_component(self.take(frame))
        if comp is None:
            return None
        _, (x, y, cw, ch) = comp
        bx0, by0, bx1, by1 = self.box
        y0, y1 = max(by0 + y - 24, by0), min(by0 + y + ch + 24, by1)
        x0, x1 = bx0 + x, bx0 + x + cw
        sub = self.outside[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        return EcgArea((x0, y0, x1, y1), sub, self.from_region)

    def take(self, frame: np.ndarray) -> np.ndarray:
        """The area of one original frame as grey (the brightest channel: traces are coloured)."""
        x0, y0, x1, y1 = self.box
        part = frame[y0:y1, x0:x1]
        grey = part.max(axis=2) if part.ndim == 3 else part
        return np.where(self.outside, grey, 0).astype(np.uint8)


@dataclass
class EcgReading:
    positions: np.ndarray | None  #: cycle position per frame, None when the trace cannot time the clip
    how: str
    r_peaks_x: list[int] = field(default_factory=list)  #: R peaks along the trace (area pixels)
    trace_y: np.ndarray | None = None  #: upper edge of the trace per column (NaN off the trace)
    marker_x: list[float | None] = field(default_factory=list)


def ecg_area(ds: Dataset | None, shape: tuple[int, int], field_mask: np.ndarray | None) -> EcgArea:
    """The header's ECG region where there is one, else the whole frame less the image field (grown by 4 px)."""
    h, w = shape
    for item in (ds.get("SequenceOfUltrasoundRegions", []) or []) if ds is not None else []:
        try:
            if int(item.get("RegionDataType", 0)) == ECG_REGION_TYPE:
                x0, y0 = max(int(item.RegionLocationMinX0), 0), max(int(item.RegionLocationMinY0), 0)
                x1, y1 = min(int(item.RegionLocationMaxX1) + 1, w), min(int(item.RegionLocationMaxY1) + 1, h)
                if x1 - x0 > 8 and y1 - y0 > 8:
                    return EcgArea((x0, y0, x1, y1), np.ones((y1 - y0, x1 - x0), bool), True)
        except (AttributeError, TypeError, ValueError):
            continue
    outside = np.ones((h, w), bool)
    if field_mask is not None:
        outside = ~cv2.dilate(field_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    return EcgArea((0, 0, w, h), outside, False)


def _trace_component(base: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(label mask, (x, y, w, h)) of the widest thin, unbroken curve in ``base``; None when there is none."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((base > LIT).astype(np.uint8), connectivity=8)
    best = None
    for k in range(1, n):
        x, y, cw, ch, area = (int(v) for v in stats[k])
        if cw < max(60, base.shape[1] // 12) or ch > max(cw // 2, 12) or area > 8 * cw:
            continue  # text, bars and boxes: too narrow, too tall or too filled to be a trace
        cols = np.count_nonzero((labels[y:y + ch, x:x + cw] == k).any(axis=0))
        if cols < 0.9 * cw:
            continue
        if best is None or cw > best[1][2]:
            best = (k, (x, y, cw, ch))
    if best is None:
        return None
    return labels == best[0], best[1]


def read_ecg_trace(strips: list[np.ndarray] | np.ndarray, area: EcgArea | None = None) -> EcgReading:
    """Cycle positions of a clip's frames from their ECG areas (:meth:`EcgArea.take` of each original frame)."""
    if len(strips) < 2:
        return EcgReading(None, "single frame: no current-frame marker to read")
    stack = np.stack(strips)
    base = stack.min(axis=0)
    comp = _trace_component(base)
    if comp is None:
        return EcgReading(None, "no ECG trace on screen")
    mask, (x, y, cw, ch) = comp
    rows = np.where(mask, np.arange(mask.shape[0])[:, None], mask.shape[0])
    top = rows.min(axis=0).astype(float)
    top[top >= mask.shape[0]] = np.nan
    edge = top[x:x + cw]
    if np.isnan(edge).any():  # a one-column gap (antialiasing, JPEG): bridge it
        idx = np.arange(cw)
        good = ~np.isnan(edge)
        edge = np.interp(idx, idx[good], edge[good])
    # one baseline sample at each end: a strip may begin or end on an R peak (the sweep starts on a beat)
    sig = np.concatenate([[np.median(-edge)], -edge, [np.median(-edge)]])
    peaks = r_peaks(sig, min_distance=max(cw // 12, 8)) - 1
    peaks_x = [int(p) + x for p in peaks]
    if len(peaks_x) < 2:
        return EcgReading(None, f"ECG trace with {len(peaks_x)} R peak(s): no R-R interval", peaks_x, top)
    rr = float(np.median(np.diff(peaks_x)))
    y0, y1 = max(y - 20, 0), min(y + ch + 20, base.shape[0])
    fractions, markers = [], []
    for s in stack:
        excess = (s[y0:y1].astype(np.int16) - base[y0:y1]) > MARKER_STEP
        col = excess.sum(axis=0)
        mx = int(np.argmax(col))
        if col[mx] < max(0.5 * ch, 6):
            fractions.append(np.nan)
            markers.append(None)
            continue
        hits = np.flatnonzero(col >= 0.5 * col[mx])
        hits = hits[np.abs(hits - mx) <= 3]
        mx = float(hits.mean())
        markers.append(mx)
        k = int(np.searchsorted(peaks_x, mx, side="right")) - 1
        if 0 <= k < len(peaks_x) - 1:
            f = (mx - peaks_x[k]) / (peaks_x[k + 1] - peaks_x[k])
        elif k == len(peaks_x) - 1:
            f = (mx - peaks_x[k]) / rr
        else:
            f = 1.0 - (peaks_x[0] - mx) / rr
        fractions.append(f if 0.0 <= f < 1.0 else np.nan)
    n_marked = int(np.isfinite(fractions).sum())
    if n_marked < len(stack):
        how = ("ECG trace without a current-frame marker" if n_marked == 0 else
               f"current-frame marker found on {n_marked} of {len(stack)} frames")
        if n_marked < max(2, len(stack) // 2):
            return EcgReading(None, how, peaks_x, top, markers)
    where = "ECG region" if area is not None and area.from_region else "screen"
    return EcgReading(positions_from_fractions(fractions),
                      f"ECG trace on the {where} ({len(peaks_x)} R peaks, marker on {n_marked}/{len(stack)} frames)",
                      peaks_x, top, markers)
