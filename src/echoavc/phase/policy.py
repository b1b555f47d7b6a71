"""The frame policy on screened frames: each frame gets its phase, and frames outside the policy leave the exam.

A frame outside the policy gets status ``other_phase``, so exam decisions, in predict and in ``echoavc train``'s
choice of the exam threshold alike, rest on the policy's frames only. :class:`PolicyGate` reads the policy between
the models so that they skip what it leaves out: where the header or the ECG trace times the clip, the detector
runs on the policy's frames only; where the valve image must decide, it needs every frame's box, so the detector
runs on all of them; the classifier reads the policy's frames only. An ``other_phase`` frame keeps its box and
valve score when the detector saw it, never a probability.
"""

from __future__ import annotations

from typing import Callable, Sequence

from echoavc.phase import FRAME_POLICIES, ClipPhase, frames_in_policy

__all__ = ["OTHER_PHASE", "PolicyGate", "apply_frame_policy", "boxes_of"]

OTHER_PHASE = "other_phase"
#: statuses a policy may take out of the exam (the others already are out)
_SCREENED = ("decided", "low_confidence")


def boxes_of(frames: Sequence) -> list:
    """The valve box of each frame result (None where there is none): the image source's boxes."""
    return [f.valve_box if f.valve_box else None for f in frames]


def apply_frame_policy(frames: Sequence, phase: ClipPhase, policy: str) -> dict:
    """Write each frame result's phase fields and take frames outside ``policy`` out of the exam; returns the
    clip's phase record (``ClipResult.phase``)."""
    keep = frames_in_policy(phase, policy)
    for f, state, ed, k in zip(frames, phase.states, phase.end_diastole, keep):
        f.phase, f.phase_source, f.end_diastole = state, phase.source, bool(ed)
        if not k and f.status in _SCREENED:
            f.status, f.decision = OTHER_PHASE, ""
    return {"source": phase.source, "how": phase.how, "notes": phase.notes, "frames": policy,
            "screened": int(sum(keep))}


class PolicyGate:
    """The frame policy of one clip, read between the detector and the classifier (``Screener.screen``).

    ``read_phase(boxes)`` times the clip: the header, then the ECG trace, then, only when ``boxes`` is given (one
    valve box or None per kept frame), the valve image (``PhaseReader.phase``; ``echoavc.phase.decide_phase``)."""

    def __init__(self, read_phase: Callable[[list | None], ClipPhase], policy: str):
        if policy not in FRAME_POLICIES:
            raise ValueError(f"frame policy must be one of {FRAME_POLICIES}, not {policy!r}")
        self.read_phase, self.policy = read_phase, policy
        self.phase: ClipPhase | None = None

    def to_locate(self) -> list[bool] | None:
        """The frames the detector must see: the policy's frames where the header or the ECG trace already
        times the clip; None (every frame) when the valve image will decide or the policy takes every frame."""
        if self.policy == "all":
            return None
        phase = self.read_phase(None)
        if phase.source == "none":
            return None
        self.phase = phase
        return frames_in_policy(phase, self.policy)

    def to_classify(self, boxes: list) -> list[bool]:
        """The frames the classifier reads, once the detector's ``boxes`` are known."""
        if self.phase is None:
            self.phase = self.read_phase(boxes)
        return frames_in_policy(self.phase, self.policy)

    def apply(self, frames: Sequence) -> dict:
        """:func:`apply_frame_policy` with this clip's phase (read now from the frames' boxes if the models did
        not run, as on a clip of another view)."""
        if self.phase is None:
            self.phase = self.read_phase(boxes_of(frames))
        return apply_frame_policy(frames, self.phase, self.policy)
