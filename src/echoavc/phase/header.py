"""Phase source 1: the DICOM header.

Frame times come from Frame Time Vector (0018,1065) or Frame Time (0018,1063); the R waves from, in this order,
R Wave Time Vector (0018,6060, ms from the first frame), R Wave Pointer (0028,6040, 1-based frame numbers), or
an ECG in a Waveform Sequence (5400,0100), its R peaks found in the signal and placed on the frames' clock by
Multiplex Group Time Offset (0018,1068: ms from the first frame; negative when the recording starts earlier).
A single frame is timed by Trigger Time (0018,1060: ms after the R wave) with Heart Rate (0018,1088).
Heart Rate alone times nothing (it says how long a beat is, not where one starts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from echoavc.phase.timing import MARGIN, positions_from_r_times, r_peaks

__all__ = ["HeaderTiming", "frame_times_ms", "header_timing", "waveform_r_times_ms"]


@dataclass
class HeaderTiming:
    positions: np.ndarray | None  #: cycle position per frame (timing.py), None when the header cannot tell
    how: str  #: which attributes decided, or why none could
    #: the valve rule's margin (share of the R-R interval) this timing needs; None: the rule's own
    margin: float | None = None


def _num(ds: Dataset, keyword: str) -> float | None:
    try:
        v = ds.get(keyword)
        v = float(v) if v is not None and v != "" else None
    except (TypeError, ValueError):
        return None
    return v if v is not None and np.isfinite(v) else None


def frame_times_ms(ds: Dataset, n_frames: int) -> np.ndarray | None:
    """Acquisition time of each frame from the first (ms), or None when the header has no frame timing."""
    inc = np.asarray(_values(ds, "FrameTimeVector"), dtype=float)
    if len(inc) == n_frames and np.isfinite(inc).all():
        return np.cumsum(np.concatenate([[0.0], inc[1:]]))  # the first entry is 0 by definition
    ft = _num(ds, "FrameTime")
    if ft is not None and ft > 0:
        return np.arange(n_frames, dtype=float) * ft
    return None


def _values(ds: Dataset, keyword: str) -> list[float]:
    v = ds.get(keyword)
    if v is None or v == "":
        return []
    items = list(v) if hasattr(v, "__iter__") and not isinstance(v, (str, bytes)) else [v]
    try:
        return [float(x) for x in items]
    except (TypeError, ValueError):
        return []


def waveform_r_times_ms(ds: Dataset) -> tuple[np.ndarray | None, str]:
    """R-wave times (ms from the first frame) of the ECG in the header's Waveform Sequence, with a note."""
    seq = ds.get("WaveformSequence")
    if not seq:
        return None, "no Waveform Sequence"
    for index, item in enumerate(seq):
        labels = " ".join(str(ch.get("ChannelLabel", "")) + " " +
                          " ".join(str(c.get("CodeMeaning", "")) for c in ch.get("ChannelSourceSequence", []) or [])
                          for ch in item.get("ChannelDefinitionSequence", []) or []).lower()
        if labels.strip() and not any(w in labels for w in ("ecg", "lead", "ekg")):
            continue  # a pressure or respiration waveform
        try:
            sig = np.asarray(ds.waveform_array(index), dtype=float)
            fs = float(item.SamplingFrequency)
        except Exception as exc:  # a malformed waveform: the other sources decide
            return None, f"unreadable ECG waveform ({type(exc).__name__})"
        sig = sig[:, 0] if sig.ndim == 2 else sig
        peaks = r_peaks(sig, min_distance=int(0.25 * fs))  # no heart beats faster than 240/min
        if len(peaks) == 0:
            return None, "no R peaks in the ECG waveform"
        offset = _num(item, "MultiplexGroupTimeOffset") or 0.0
        return offset + peaks * 1000.0 / fs, f"ECG waveform ({len(peaks)} R peaks)"
    return None, "no ECG in the Waveform Sequence"


def header_timing(ds: Dataset, n_frames: int) -> HeaderTiming:
    """Cycle positions of every frame of the file from its header alone."""
    hr = _num(ds, "HeartRate")
    rr = 60000.0 / hr if hr and 20 <= hr <= 300 else None
    if n_frames <= 1:
        trig = _num(ds, "TriggerTime")
        if trig is not None and rr:
            return HeaderTiming(np.array([(trig % rr) / rr]), "Trigger Time and Heart Rate")
        return HeaderTiming(None, "single frame without Trigger Time and Heart Rate")
    times = frame_times_ms(ds, n_frames)
    if times is None:
        return HeaderTiming(None, "no Frame Time or Frame Time Vector")
    r = _values(ds, "RWaveTimeVector")
    if r:
        return HeaderTiming(positions_from_r_times(times, r, rr), "R Wave Time Vector")
    ptr = [int(p) - 1 for p in _values(ds, "RWavePointer") if 1 <= p <= n_frames]
    if ptr:
        # an R wave known only to its nearest frame: up to half a frame interval off
        pos = positions_from_r_times(times, times[ptr], rr)
        step = float(np.nanmedian(np.abs(np.diff(pos)))) if np.isfinite(pos).sum() > 1 else 0.0
        return HeaderTiming(pos, "R Wave Pointer", MARGIN + step / 2)
    wave, note = waveform_r_times_ms(ds)
    if wave is not None:
        return HeaderTiming(positions_from_r_times(times, wave, rr), note)
    return HeaderTiming(None, "no R-wave timing (R Wave Time Vector, R Wave Pointer, ECG waveform): " + note)
