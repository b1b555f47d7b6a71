"""Settings of screening (stored in the bundle) and of the DICOM listener."""

from __future__ import annotations

from dataclasses import dataclass

from echoavc.errors import EchoAVCError
from echoavc.settings.base import EXAM_AGGREGATES, EXAM_THRESHOLD_RULES, FRAME_POLICIES, _check


@dataclass(frozen=True)
class ScreeningSettings:
    """``echoavc predict``: from a valve box and a calibrated probability per frame to a call per exam.

    Stored in the model bundle; the exam threshold itself is chosen on validation exams by ``echoavc train``.
    """

    #: A frame whose top valve box scores below this is "no valve": not an aortic-valve short-axis view, or
    #: no valve found (the detector's own ``conf``, 0.25, unless set).
    valve_conf: float = 0.25
    #: Valve found, but with a score below this: "low confidence"; the frame is shown, not used for the exam.
    decide_conf: float = 0.5
    #: How an exam's decided frames become one probability: mean | median | max.
    exam_aggregate: str = "mean"
    #: Exam threshold rule on validation exams: "recall" (highest threshold with recall >= min_recall),
    #: "youden", or "frame" (reuse the frame threshold).
    exam_threshold_rule: str = "recall"
    min_recall: float = 0.95
    #: Locate the valve on this many evenly spaced frames of a clip first, then halfway between any two located
    #: frames whose boxes drifted apart (see ``track_iou``) until neighbours agree; every other frame takes the
    #: box of its nearest located frame (the valve barely moves in a short-axis clip); 0: every frame.
    detect_frames: int = 0
    #: With ``detect_frames``: two located frames whose boxes overlap less than this (intersection over union),
    #: or that differ in having a valve or in reaching ``decide_conf``, have the frame between them located too.
    track_iou: float = 0.85
    #: Grad-CAM overlays for the frame that drives each exam's decision (needs the PyTorch classifier).
    explain: bool = True
    #: Frames per batch through the detector and the classifier.
    batch: int = 16
    #: Which frames count for the exam (docs/phase.md): "closed" (aortic valve closed, as the paper picked),
    #: "all", or "end-diastole" (the frame nearest the R wave of each beat). A clip whose phase no source can
    #: tell is screened whole. Bundles made before this setting screen "all" (bundle.py).
    frames: str = "closed"

    def __post_init__(self):
        _check(self, {"exam_aggregate": EXAM_AGGREGATES, "exam_threshold_rule": EXAM_THRESHOLD_RULES,
                      "frames": FRAME_POLICIES},
               shares=("valve_conf", "decide_conf", "min_recall", "track_iou"))
        if self.decide_conf < self.valve_conf:
            raise EchoAVCError(f"decide_conf ({self.decide_conf}) must be at least valve_conf ({self.valve_conf}) "
                               "(--decide-conf, --valve-conf)")



@dataclass(frozen=True)
class ListenSettings:
    """``echoavc listen``: the DICOM node that screens what scanners send (echoavc.listen)."""

    ae_title: str = "ECHOAVC"
    host: str = "127.0.0.1"  #: the address to bind; 0.0.0.0 for every interface (then use --allow)
    port: int = 11112
    quiet_s: float = 30.0  #: a study is screened when no instance of it has arrived for this long
    retain_s: float = 0.0  #: identified instances are kept this long after their results are out
    backoff_s: float = 2.0  #: first wait before a failed forward is retried; doubles up to backoff_max_s
    backoff_max_s: float = 300.0
    poll_s: float = 0.5  #: how often the queue is looked at
    overlays: str = "driving"
