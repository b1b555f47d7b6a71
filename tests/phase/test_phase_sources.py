"""The phase sources on inputs whose timing is known: a drawn ECG trace, header timing, an ECG waveform."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from echoavc.phase import CLOSED, OPEN, UNKNOWN, decide_phase
from echoavc.phase.ecg_trace import ecg_area, read_ecg_trace
from echoavc.phase.header import header_timing
from echoavc.phase.timing import end_diastole_frames, valve_state
from echoavc.synth import screen as V
from echoavc.synth.dicom import to_gray

LAYOUT = V.LAYOUTS["console"]


def _screens(fractions, style: V.EcgStyle, grey: bool = False) -> list[np.ndarray]:
    """Black screens with only the ECG strip drawn, one per frame at its cycle fraction."""
    out = []
    for f in fractions:
        img = np.zeros((LAYOUT.height, LAYOUT.width, 3), np.uint8)
        V._ecg(img, LAYOUT, f, 70, style.color, style.beats, style.marker)
        out.append(to_gray(img) if grey else img)
    return out


@pytest.mark.parametrize("color,beats,grey", [(V.ECG_COLORS[0], 2.2, False), (V.ECG_COLORS[1], 3.2, True),
                                              (V.ECG_COLORS[3], 2.6, True)])
def test_r_peaks_and_the_marker_give_each_frames_cycle_fraction(color, beats, grey):
    fractions = np.round((0.3 + np.arange(14) * 0.15) % 1.0, 4)  # two beats and a bit
    frames = _screens(fractions, V.EcgStyle(True, color, beats, True), grey)
    area = ecg_area(None, frames[0].shape[:2], None)
    reading = read_ecg_trace([area.take(f) for f in frames], area)
    x0, x1 = 60, int(LAYOUT.width * 0.42)
    want_r = [x0 + k / beats * (x1 - x0) for k in range(int(beats) + 1)]
    assert len(reading.r_peaks_x) == len(want_r)
    assert np.abs(np.array(reading.r_peaks_x) - want_r).max() <= 2
    got = np.asarray(reading.positions)
    assert np.isfinite(got).all()
    assert np.abs(got % 1.0 - fractions).max() < 0.02  # fraction of the R-R interval, per frame
    assert np.all(np.diff(got) > 0)  # beats counted on: a new beat where the fraction falls back
    assert [valve_state(u) for u in got] == [valve_state(f) for f in fractions]


def test_a_trace_without_its_marker_or_a_single_frame_times_nothing():
    fractions = [0.1, 0.4, 0.7]
    frames = _screens(fractions, V.EcgStyle(marker=False))
    area = ecg_area(None, frames[0].shape[:2], None)
    no_marker = read_ecg_trace([area.take(f) for f in frames], area)
    assert no_marker.positions is None and "marker" in no_marker.how and len(no_marker.r_peaks_x) == 3
    one = read_ecg_trace([area.take(_screens([0.5], V.EcgStyle())[0])], area)
    assert one.positions is None and "single frame" in one.how
    blank = read_ecg_trace([area.take(np.zeros_like(frames[0]))] * 3, area)
    assert blank.positions is None and "no ECG trace" in blank.how


def _multiframe(n=10, frame_ms=50.0, hr=75) -> Dataset:
    ds = Dataset()
    ds.NumberOfFrames = n
    ds.FrameTime = frame_ms
    ds.HeartRate = hr
    return ds


def test_header_r_wave_timing_times_every_frame():
    ds = _multiframe()  # R-R 800 ms, frames every 50 ms
    assert header_timing(ds, 10).positions is None  # frame time and heart rate alone: no anchor
    assert "no R-wave timing" in header_timing(ds, 10).how
    ds.RWaveTimeVector = [120.0]
    got = header_timing(ds, 10)
    want = (np.arange(10) * 50.0 - 120.0) / 800.0  # before the R wave: the beat before, extrapolated
    assert got.how == "R Wave Time Vector" and np.allclose(got.positions, want)
    states = [valve_state(u) for u in got.positions]
    # 0 ms: 0.85 of the beat before (closed); 150 ms: 0.04, within the margin of opening; 200 ms: 0.10, open
    assert (states[0], states[3], states[4]) == (CLOSED, UNKNOWN, OPEN)
    assert end_diastole_frames(got.positions) == [2]  # 100 ms is nearest the R wave at 120 ms
    del ds.RWaveTimeVector
    ds.RWavePointer = [3, 19]  # frame numbers; 19 is outside the clip and ignored
    assert np.allclose(header_timing(ds, 10).positions, (np.arange(10) * 50.0 - 100.0) / 800.0)
    del ds.FrameTime
    ds.FrameTimeVector = [0.0] + [50.0] * 9
    assert header_timing(ds, 10).how == "R Wave Pointer"


def test_a_single_frame_is_unknown_unless_its_header_times_it():
    ds = Dataset()
    ds.HeartRate = 60
    phase = decide_phase(1, header_timing(ds, 1), None, None)
    assert phase.states == [UNKNOWN] and phase.source == "none"
    ds.TriggerTime = 700.0  # 0.7 of a 1000 ms beat: diastole, valve closed
    phase = decide_phase(1, header_timing(ds, 1), None, None)
    assert phase.states == [CLOSED] and phase.source == "header"
    ds.TriggerTime = 200.0
    assert decide_phase(1, header_timing(ds, 1)).states == [OPEN]


def test_an_ecg_waveform_in_the_header_times_the_frames_through_a_file_round_trip():
    from echoavc.synth.phase import ClipTiming, add_timing

    t = ClipTiming(V.EcgStyle(), "waveform", "none", False, rr_ms=850.0, start=0.37, beats=2.0, n_frames=20)
    ds = _multiframe(20, t.frame_ms, 70)
    ds.file_meta = Dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    add_timing(ds, t)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    back = dcmread(io.BytesIO(buf.getvalue()), force=True)
    got = header_timing(back, 20)
    assert got.how.startswith("ECG waveform")
    truth = t.start + np.arange(20) * t.beats / 20  # cycle position of each frame
    assert np.abs((np.asarray(got.positions) - truth + 0.5) % 1.0 - 0.5).max() < 0.01
    # the clip spans two R waves: the frames nearest them are its end-diastole frames
    assert end_diastole_frames(got.positions) == end_diastole_frames(truth - 0.0) == [6, 16]
