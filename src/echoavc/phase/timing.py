"""Cardiac timing shared by every phase source: cycle positions, the valve rule, end-diastole frames.

Every source ends in the same form: for each kept frame its *cycle position* ``u`` (float; NaN where unknown),
counted in R-R intervals from the first R wave at or before the clip: ``floor(u)`` numbers the beat and
``u mod 1`` is the fraction of the R-R interval elapsed since its R wave. From ``u`` follow the valve state of
each frame (:func:`valve_states`) and the frame nearest end-diastole of each beat (:func:`end_diastole_frames`:
the R wave, the electrical end of diastole, as echocardiographers time it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["CLOSED", "OPEN", "UNKNOWN", "PHASES", "OPENS_AT", "CLOSES_AT", "MARGIN", "valve_state", "valve_states",
           "positions_from_r_times", "positions_from_fractions", "end_diastole_frames", "r_peaks"]

CLOSED, OPEN, UNKNOWN = "closed", "open", "unknown"
PHASES = (CLOSED, OPEN, UNKNOWN)
#: The aortic valve opens after the isovolumic contraction and closes at the end of the T wave; as shares of the
#: R-R interval from the R wave (the synthetic heart: synth/anatomy.py ``valve_opening``).
OPENS_AT, CLOSES_AT = 0.06, 0.40
#: Frames within this share of the R-R interval of opening or closing are "unknown": a timing error of a few
#: per cent (a frame's exposure, a marker one pixel off, beat-to-beat variation) must not call an opening valve
#: closed.
MARGIN = 0.03


def valve_state(fraction: float, margin: float = MARGIN) -> str:
    """closed | open | unknown for a frame at ``fraction`` (0..1) of its R-R interval; NaN -> unknown.

    Closed includes the isovolumic contraction (R wave to opening) and diastole; open is ejection. ``margin``:
    the share of the R-R interval either side of opening and closing called unknown (wider when the timing is
    coarser, e.g. R waves known only to the nearest frame)."""
    if fraction is None or not np.isfinite(fraction):
        return UNKNOWN
    f = float(fraction) % 1.0
    if OPENS_AT + margin <= f < CLOSES_AT - margin:
        return OPEN
    if f >= CLOSES_AT + margin or f < OPENS_AT - margin:
        return CLOSED
    return UNKNOWN


def valve_states(positions: Sequence[float], margin: float | None = None) -> list[str]:
    m = MARGIN if margin is None else max(float(margin), MARGIN)
    return [valve_state(u, m) for u in np.asarray(positions, dtype=float)]


def positions_from_r_times(frame_ms: Sequence[float], r_ms: Sequence[float], rr_ms: float | None = None) -> np.ndarray:
    """Cycle positions of frames at ``frame_ms`` given R-wave times ``r_ms`` (same clock, ms).

    Between two R waves the position is interpolated; before the first or after the last one it is extrapolated
    with ``rr_ms`` (else the median R-R interval), at most one interval; NaN beyond that or with nothing to go by."""
    t = np.asarray(frame_ms, dtype=float)
    r = np.sort(np.asarray(r_ms, dtype=float))
    out = np.full(len(t), np.nan)
    if len(r) == 0:
        return out
    rr = rr_ms if rr_ms else (float(np.median(np.diff(r))) if len(r) > 1 else None)
    for i, ti in enumerate(t):
        k = int(np.searchsorted(r, ti, side="right")) - 1  # last R at or before ti
        if 0 <= k < len(r) - 1:
            out[i] = k + (ti - r[k]) / (r[k + 1] - r[k])
        elif k == len(r) - 1 and rr and (ti - r[k]) < rr:
            out[i] = k + (ti - r[k]) / rr
        elif k < 0 and rr and (r[0] - ti) <= rr:
            out[i] = -(r[0] - ti) / rr  # in the beat before the first R wave (position -1 is its R wave)
    return out


def positions_from_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Cycle positions from per-frame R-R fractions (0..1) of consecutive frames: a new beat wherever the
    fraction falls back (frames are much closer together than one R-R interval in a cine loop)."""
    f = np.asarray(fractions, dtype=float)
    out = np.full(len(f), np.nan)
    beat, prev = 0, None
    for i, x in enumerate(f):
        if not np.isfinite(x):
            continue
        if prev is not None and x < prev:
            beat += 1
        out[i] = beat + x
        prev = x
    return out


def end_diastole_frames(positions: Sequence[float]) -> list[int]:
    """Per beat, the frame nearest its R wave: for each whole number ``n`` within half a frame interval of the
    clip's span of positions, the frame whose position is nearest ``n``."""
    u = np.asarray(positions, dtype=float)
    ok = np.flatnonzero(np.isfinite(u))
    if len(ok) < 2:
        if len(ok) == 1 and (u[ok[0]] % 1.0 < 0.02 or u[ok[0]] % 1.0 > 0.98):
            return [int(ok[0])]  # a single frame acquired on the R wave (trigger time ~0)
        return []
    du = float(np.median(np.abs(np.diff(u[ok]))))
    lo, hi = float(u[ok].min()) - du / 2, float(u[ok].max()) + du / 2
    picks = []
    for n in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
        j = int(ok[np.argmin(np.abs(u[ok] - n))])
        if abs(u[j] - n) <= du / 2 + 1e-9 and j not in picks:
            picks.append(j)
    return sorted(picks)


def r_peaks(signal: np.ndarray, min_distance: int, rel_prominence: float = 0.5) -> np.ndarray:
    """Indices of the R peaks of an ECG-like signal: peaks standing out by at least ``rel_prominence`` of the
    signal's range above its median (the R wave dwarfs P and T), at least ``min_distance`` samples apart."""
    from scipy.signal import find_peaks

    x = np.asarray(signal, dtype=float)
    if x.size < 3 or not np.isfinite(x).all():
        return np.array([], dtype=int)
    # polarity: the R wave is the largest excursion from the baseline (a lead may be inverted)
    base = float(np.median(x))
    if base - x.min() > 1.5 * (x.max() - base):
        x = -x
        base = -base
    height = base + rel_prominence * (x.max() - base)
    peaks, _ = find_peaks(x, height=height, prominence=rel_prominence * (x.max() - base),
                          distance=max(int(min_distance), 1))
    return peaks
