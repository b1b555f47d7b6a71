"""Which clips and frames screening takes: the header's word, the clip's view, and the colour-Doppler rule.

Called by one input screened (:func:`echoavc.screening.clips.screen_input`) and by a dataset table screened
(:func:`echoavc.evaluate.heldout.screen_table_part`), so ``predict``, ``train``'s validation and ``evaluate`` take
the same frames. A clip not taken keeps one row per frame, with the reason as its status: never dropped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from echoavc.views.classes import SCREENED_VIEW
from echoavc.views.headers import COLOUR_MAX_SHARE, HeaderKind, colour_share

__all__ = ["NOT_SCREENED", "header_frames", "screen_with_view", "apply_colour_rule"]

#: frame statuses of what is not screened (echoavc.screening.core.STATUS_TEXT holds their text)
NOT_SCREENED = {
    "other_view": "clip view is not the aortic-valve short axis: not screened",
    "m_mode": "M-mode (header: Sequence of Ultrasound Regions): not a 2D view, not screened",
    "spectral_doppler": "spectral Doppler (header: Sequence of Ultrasound Regions): not a 2D view, not screened",
    "colour_doppler": "colour Doppler over the valve area: not screened (the leaflets are hidden)",
}
_HEADER_STATUS = {"m-mode": "m_mode", "spectral doppler": "spectral_doppler"}


def header_frames(kind: HeaderKind, exam_id: str, source: str, kept: Sequence[int]):
    """(frames, clip view record) of a file the header rules out (M-mode, spectral Doppler)."""
    from echoavc.screening.core import FrameResult

    status = _HEADER_STATUS[kind.kind]
    frames = [FrameResult(exam_id, source, int(k), status, view="other", view_probability=1.0) for k in kept]
    return frames, {"view": "other", "probability": 1.0, "source": "header", "reason": kind.kind}


def screen_with_view(screener, images: Sequence[np.ndarray], kept: Sequence[int], exam_id: str, source: str,
                     gate=None):
    """(frames, clip view record or None): the screener's frames, after its view model (when the bundle has one)
    has taken the clip as ``psax_av``; a clip of another view gets ``other_view`` frames and no detection.
    ``gate``: the clip's frame policy, for ``Screener.screen``."""
    from echoavc.screening.core import FrameResult

    vm = getattr(screener, "views", None)
    if vm is None or not len(images):
        frames = screener.screen(images, kept, exam_id, source, gate)
        apply_colour_rule(frames, images)
        return frames, None
    cv = vm.clip(images)
    p = round(cv.probability, 4)
    rec = {"view": cv.view, "probability": p, "source": "model",
           "reason": "" if cv.view == SCREENED_VIEW else f"view {cv.view} (p={p:.2f})"}
    if cv.view == SCREENED_VIEW:
        frames = screener.screen(images, kept, exam_id, source, gate)
        apply_colour_rule(frames, images)
    else:
        frames = [FrameResult(exam_id, source, int(k), "other_view") for k in kept]
    for f in frames:
        f.view, f.view_probability = cv.view, p
    return frames, rec


def apply_colour_rule(frames, images: Sequence[np.ndarray], max_share: float = COLOUR_MAX_SHARE) -> None:
    """The colour-Doppler rule, in place: a frame whose valve box holds more than ``max_share`` colour pixels is
    ``colour_doppler`` (box kept for the picture, no decision). Grey frames are untouched."""
    for f, img in zip(frames, images):
        if img.ndim == 3 and f.valve_box and f.status in ("decided", "low_confidence") \
                and colour_share(img, f.valve_box) > max_share:
            f.status, f.decision, f.probability, f.grade_probabilities = "colour_doppler", "", None, None
