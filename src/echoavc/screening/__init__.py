"""Screening with a model bundle: the numeric core (:mod:`.core`: standard frames in, frame results out),
one input file screened (:mod:`.clips`), and exam decisions (:mod:`.exams`). The batch over many inputs, with
its outputs, is :mod:`echoavc.predict`."""

from echoavc.screening.clips import HEAT_MAP_FILE, explain_exams, frame_label, read_input, screen_input
from echoavc.screening.core import (STATUS_TEXT, ClipResult, FrameResult, Screener, exam_id_of, heat_map,
                                    located_frames, nearest_located)
from echoavc.screening.exams import exam_results

__all__ = ["HEAT_MAP_FILE", "STATUS_TEXT", "ClipResult", "FrameResult", "Screener", "exam_id_of", "exam_results",
           "explain_exams", "frame_label", "heat_map", "located_frames", "nearest_located", "read_input",
           "screen_input"]
