"""The phase sources on one prepared clip, as ``predict`` decodes it (screening/clips.py ``screen_input``)."""

from __future__ import annotations

import numpy as np

__all__ = ["PhaseReader"]


class PhaseReader:
    """The phase sources on one prepared clip: its header, the ECG strip of each original frame as it is
    decoded (only the strip is kept), and at the end the valve in the standard frames (echoavc.phase)."""

    def __init__(self, prep):
        from echoavc.phase.header import header_timing

        self.prep = prep
        self.ds = prep.clip.dataset if prep.clip is not None else None
        self.head = header_timing(self.ds, prep.clip.n_frames) if self.ds is not None else None
        # one frame has no current-frame marker to read against the trace: the trace is not looked for (10 ms, a
        # sixth of a single-frame file's screening, for nothing)
        self.timeable = len(prep.kept) > 1
        self.area, self.strips, self.looked = None, [], False
        self._read = None

    def add(self, frame: np.ndarray) -> None:
        from echoavc.phase.ecg_trace import ecg_area

        if not self.looked:
            self.looked = True
            if self.timeable:
                self.area = ecg_area(self.ds, frame.shape[:2], self.prep.frame.mask).focus(frame)
        if self.area is not None:
            self.strips.append(self.area.take(frame))

    def _timing(self):
        """(header timing over the kept frames, ECG reading), read once."""
        if self._read is None:
            from echoavc.phase.ecg_trace import EcgReading, read_ecg_trace

            head = self.head
            if head is not None and head.positions is not None and len(head.positions) > 1:
                head.positions = np.asarray(head.positions)[self.prep.kept]
            if self.area is not None or not self.timeable:
                ecg = read_ecg_trace(self.strips, self.area)  # for a single frame: its word why not
            else:
                ecg = EcgReading(None, "no ECG trace on screen")
            self._read = (head, ecg)
        return self._read

    def phase(self, images, boxes):
        """The clip's phase. ``boxes=None``: the header and the ECG trace only (before the detector has run;
        the clip is ``unknown`` if neither times it); otherwise the valve image in ``boxes`` decides after them."""
        from echoavc.phase import decide_phase
        from echoavc.phase.image import read_valve_image

        head, ecg = self._timing()
        image = None if boxes is None else (lambda: read_valve_image(images, boxes))
        return decide_phase(len(self.prep.kept), head, ecg, image)
