"""Valve phase per frame: is the aortic valve closed or open, and which frame is nearest end-diastole per beat.

The paper screened frames with the valve closed. Three sources, tried in this order, each reported per clip:

1. ``header``: :mod:`echoavc.phase.header` (frame timing with R-wave timing or an ECG waveform);
2. ``ecg_trace``: :mod:`echoavc.phase.ecg_trace` (the ECG drawn on screen, from the original pixels);
3. ``image``: :mod:`echoavc.phase.image` (the valve's centre over the clip, inside the detected valve box).

The first that times the clip decides (``source``); ``none`` when none could (then every frame is ``unknown``).
The shared rules (valve state from the cycle, end-diastole frames) are :mod:`echoavc.phase.timing`. A frame
policy (``predict --frames``) picks the frames screened: :func:`frames_in_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from echoavc.phase.timing import CLOSED, OPEN, PHASES, UNKNOWN, end_diastole_frames, valve_states
from echoavc.settings.base import FRAME_POLICIES

__all__ = ["ClipPhase", "SOURCES", "FRAME_POLICIES", "decide_phase", "frames_in_policy", "CLOSED", "OPEN",
           "UNKNOWN", "PHASES"]

SOURCES = ("header", "ecg_trace", "image", "none")


@dataclass
class ClipPhase:
    """The phase of each kept frame of one clip, and which source decided it."""

    states: list[str]  #: closed | open | unknown per kept frame
    end_diastole: list[bool]  #: the frame nearest end-diastole of its beat
    source: str  #: header | ecg_trace | image | none
    how: str  #: what in that source decided
    notes: dict[str, str] = field(default_factory=dict)  #: why each earlier source did not decide
    positions: list[float | None] | None = None  #: cycle positions (timing sources)

    @classmethod
    def unknown(cls, n: int, notes: dict[str, str]) -> "ClipPhase":
        return cls([UNKNOWN] * n, [False] * n, "none", "no source could time the clip", notes)

    @classmethod
    def from_positions(cls, positions: np.ndarray, source: str, how: str, notes: dict[str, str],
                       margin: float | None = None) -> "ClipPhase":
        ed = set(end_diastole_frames(positions))
        return cls(valve_states(positions, margin), [i in ed for i in range(len(positions))], source, how, notes,
                   [None if not np.isfinite(u) else round(float(u), 4) for u in positions])


def decide_phase(n_kept: int, header=None, ecg=None, image: Callable[[], object] | None = None) -> ClipPhase:
    """The first source that times the clip decides. ``header``: a :class:`~echoavc.phase.header.HeaderTiming`
    over the kept frames; ``ecg``: an :class:`~echoavc.phase.ecg_trace.EcgReading`; ``image()``: an
    :class:`~echoavc.phase.image.ImageReading`, made only when the first two cannot tell."""
    notes: dict[str, str] = {}
    for name, reading in (("header", header), ("ecg_trace", ecg)):
        if reading is None:
            continue
        if reading.positions is not None and np.isfinite(reading.positions).any():
            return ClipPhase.from_positions(np.asarray(reading.positions, float), name, reading.how, notes,
                                            getattr(reading, "margin", None))
        notes[name] = reading.how
    if image is not None:
        r = image()
        if r.states is not None:
            ed = set(r.end_diastole)
            return ClipPhase(list(r.states), [i in ed for i in range(n_kept)], "image", r.how, notes)
        notes["image"] = r.how
    return ClipPhase.unknown(n_kept, notes)


def frames_in_policy(phase: ClipPhase, policy: str) -> list[bool]:
    """Which kept frames a policy screens. A clip no source could time is screened whole (the frames of an
    exported image or a header-less single frame are not dropped unseen); its frames say phase ``unknown``."""
    if policy not in FRAME_POLICIES:
        raise ValueError(f"frame policy must be one of {FRAME_POLICIES}, not {policy!r}")
    n = len(phase.states)
    if policy == "all" or phase.source == "none":
        return [True] * n
    if policy == "closed":
        return [s == CLOSED for s in phase.states]
    return list(phase.end_diastole)
