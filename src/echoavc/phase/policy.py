"""The frame policy on screened frames: each frame gets its phase, and frames outside the policy leave the exam.

The models run on every frame (the image source needs the detector's valve boxes); a frame outside the policy
keeps its box and probability for the record but gets status ``other_phase``, so exam decisions, in predict and
in ``echoavc train``'s choice of the exam threshold alike, rest on the policy's frames only.
"""

from __future__ import annotations

from typing import Sequence

from echoavc.phase import ClipPhase, frames_in_policy

__all__ = ["OTHER_PHASE", "apply_frame_policy", "boxes_of"]

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
