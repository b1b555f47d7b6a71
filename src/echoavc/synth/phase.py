"""Cardiac timing of a synthetic clip as a scanner would record it: in the header, and as the ECG on screen.

With ``SynthSettings.phase_variety`` off (the default) a clip carries what it always did: Frame Time and Heart
Rate in the header (which time no frame: they do not say where a beat starts) and, on the layouts with an ECG,
the green trace with its current-frame marker. With it on, each clip draws, from its own random stream (so the
images and every other attribute stay as they were), one of:

- header timing: none, R Wave Time Vector, R Wave Pointer, or an ECG in a Waveform Sequence (Trigger Time for
  a single frame), with Frame Time or Frame Time Vector;
- the ECG on screen (layouts with one): drawn or not, one of four trace colours, three sweep speeds, with or
  without the current-frame marker; and, with Sequence of Ultrasound Regions, an ECG region (data type 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from echoavc.synth import screen as V

__all__ = ["HEADER_TIMINGS", "ClipTiming", "clip_timing", "add_timing", "ecg_waveform"]

HEADER_TIMINGS = ("none", "r_wave_times", "r_wave_pointer", "waveform")
_HEADER_P = (0.3, 0.25, 0.15, 0.3)
#: ECG waveform sampling rate (Hz) and how long it runs before the first and after the last frame (ms)
ECG_HZ, ECG_PAD_MS = 500.0, 400.0


@dataclass(frozen=True)
class ClipTiming:
    style: V.EcgStyle | None  #: the ECG on screen (None: the layout's own)
    header: str  #: none | r_wave_times | r_wave_pointer | waveform | trigger_time
    screen: str  #: marker | no_marker | none  (what the screen shows)
    frame_time_vector: bool
    rr_ms: float
    start: float  #: cycle fraction of the first frame (0 = R wave)
    beats: float
    n_frames: int

    @property
    def frame_ms(self) -> float:
        return self.rr_ms * self.beats / max(self.n_frames, 1)

    def r_times_ms(self) -> list[float]:
        """R waves from the first frame's start to one frame after the last (ms from the first frame)."""
        end = self.n_frames * self.frame_ms
        return [round((k - self.start) * self.rr_ms, 2) for k in range(1, int(self.start + end / self.rr_ms) + 2)
                if (k - self.start) * self.rr_ms < end]


def clip_timing(rng: np.random.Generator, settings, layout: V.Layout, heart_rate: int, plan, truth) -> ClipTiming:
    rr = 60000.0 / heart_rate
    start = float(truth[0]["phase"]) if truth else 0.0
    common = dict(rr_ms=rr, start=start, beats=float(plan.beats), n_frames=len(truth))
    if not settings.phase_variety:
        return ClipTiming(None, "none", "marker" if layout.ecg else "none", False, **common)
    header = str(rng.choice(HEADER_TIMINGS, p=_HEADER_P))
    if len(truth) == 1 and header != "none":
        header = "trigger_time"
    ftv = bool(rng.uniform() < 0.3)
    drawn = bool(rng.uniform() < 0.75)
    style = V.EcgStyle(drawn, V.ECG_COLORS[int(rng.integers(len(V.ECG_COLORS)))],
                       V.ECG_BEATS[int(rng.integers(len(V.ECG_BEATS)))], bool(rng.uniform() < 0.9))
    screen = "none" if not (layout.ecg and drawn) else "marker" if style.marker else "no_marker"
    return ClipTiming(style, header, screen, ftv, **common)


def ecg_waveform(t: ClipTiming, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(samples in microvolts, int16; time offset of the first sample from the first frame, ms)."""
    n = int((t.n_frames * t.frame_ms + 2 * ECG_PAD_MS) / 1000.0 * ECG_HZ)
    ms = -ECG_PAD_MS + np.arange(n) * 1000.0 / ECG_HZ
    mv = V.ecg_wave(t.start + ms / t.rr_ms) + 0.08 * np.sin(2 * np.pi * ms / 4000.0) + rng.normal(0, 0.02, n)
    return np.clip(np.rint(mv * 1000), -32768, 32767).astype(np.int16), -ECG_PAD_MS


def add_timing(ds: Dataset, t: ClipTiming, region_layout: V.Layout | None = None) -> None:
    """Write the clip's timing into its dataset (nothing when phase variety is off)."""
    if t.style is None:
        return
    rng = np.random.default_rng(int(t.start * 1e6) + t.n_frames)
    if t.n_frames > 1 and t.frame_time_vector:
        del ds.FrameTime
        ds.FrameTimeVector = [0.0] + [round(t.frame_ms, 3)] * (t.n_frames - 1)
        ds.FrameIncrementPointer = 0x00181065
    if t.header == "trigger_time":
        ds.TriggerTime = round(t.start * t.rr_ms, 2)
    elif t.header == "r_wave_times":
        ds.RWaveTimeVector = t.r_times_ms() or [round((1 - t.start) * t.rr_ms, 2)]
    elif t.header == "r_wave_pointer":
        ptr = sorted({min(int(round(r / t.frame_ms)), t.n_frames - 1) + 1 for r in t.r_times_ms()})
        if ptr:
            ds.RWavePointer = ptr
        else:
            ds.RWaveTimeVector = [round((1 - t.start) * t.rr_ms, 2)]  # no R wave inside the clip
    elif t.header == "waveform":
        samples, offset = ecg_waveform(t, rng)
        ds.WaveformSequence = Sequence([_waveform_item(samples, offset)])
    if region_layout is not None and region_layout.ecg and t.style.drawn and "SequenceOfUltrasoundRegions" in ds:
        x0, y0, x1, y1 = V.ecg_strip_box(region_layout, t.style)
        item = Dataset()
        item.RegionSpatialFormat = 4  # waveform
        item.RegionDataType = 9  # ECG trace
        item.RegionFlags = 0
        item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
        item.PhysicalUnitsXDirection = 4  # seconds
        item.PhysicalUnitsYDirection = 0
        item.PhysicalDeltaX = float(t.rr_ms * t.style.beats / 1000.0 / max(x1 - x0, 1))
        item.PhysicalDeltaY = 1.0
        ds.SequenceOfUltrasoundRegions.append(item)


def _waveform_item(samples: np.ndarray, offset_ms: float) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "5.6.3-9-2", "SCPECG", "Lead II"
    units = Dataset()
    units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = "uV", "UCUM", "microvolt"
    ch = Dataset()
    ch.ChannelLabel = "ECG II"
    ch.ChannelSourceSequence = Sequence([code])
    ch.ChannelSensitivity = "1"
    ch.ChannelSensitivityUnitsSequence = Sequence([units])
    ch.ChannelSensitivityCorrectionFactor = "1"
    ch.ChannelBaseline = "0"
    ch.ChannelTimeSkew = "0"
    ch.WaveformBitsStored = 16
    item = Dataset()
    item.MultiplexGroupTimeOffset = f"{offset_ms:.1f}"
    item.WaveformOriginality = "ORIGINAL"
    item.NumberOfWaveformChannels = 1
    item.NumberOfWaveformSamples = int(len(samples))
    item.SamplingFrequency = f"{ECG_HZ:.0f}"
    item.MultiplexGroupLabel = "ECG"
    item.ChannelDefinitionSequence = Sequence([ch])
    item.WaveformBitsAllocated = 16
    item.WaveformSampleInterpretation = "SS"
    item.WaveformData = samples.astype("<i2").tobytes()
    return item
