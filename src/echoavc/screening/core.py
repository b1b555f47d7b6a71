"""The numeric core of screening: standard frames in, frame results out (numpy in, records out; no files).

Each frame gets a status: ``decided``, ``no_cone`` (no ultrasound field found), ``no_valve`` (not an
aortic-valve short-axis view, or no valve found), or ``low_confidence`` (a valve box, but a weak one: shown,
not used for the exam).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from echoavc.bundle import Bundle
from echoavc.phase.policy import OTHER_PHASE
from echoavc.preprocess.crop import prepare_crop
from echoavc.settings import ScreeningSettings
from echoavc.views.screening import NOT_SCREENED

__all__ = ["STATUS_TEXT", "REJECTED_AS_OTHER_VIEW", "judged_as_view", "exam_id_of", "FrameResult", "ClipResult",
           "nearest_located", "located_frames", "drifted", "box_iou", "Screener", "heat_map"]

STATUS_TEXT = {
    "decided": "decided",
    "no_cone": "no ultrasound cone found",
    "no_valve": "not an aortic-valve short-axis view, or no valve found",
    "low_confidence": "valve found with low confidence: not used for the exam",
    "other_phase": "not a frame of the screened phase (--frames): not used for the exam",
    # not screened: the header, the clip's view or the colour-Doppler rule (echoavc.views.screening)
    **NOT_SCREENED,
}
#: statuses of a frame the models kept out of the exam as no aortic-valve short axis (the detector or the view model)
REJECTED_AS_OTHER_VIEW = ("no_valve", "other_view")


def judged_as_view(status: str, valve_score) -> bool:
    """Whether the detector or the view model judged the frame's view: not a frame the frame policy set aside
    before the detector ran (``other_phase`` without a valve score). How well other views are rejected is
    measured over these frames (``REJECTED_AS_OTHER_VIEW`` among them)."""
    return not (status == OTHER_PHASE and (valve_score is None or valve_score != valve_score))


def exam_id_of(study_uid: str, secret: bytes | None = None) -> str:
    """A short, stable exam id that does not show the study UID (which can identify a patient).

    With the ingest key's ``secret``: the keyed study pseudonym ``echoavc ingest`` gives the same study
    (``E-`` + 12 base32), so results join the ingest manifest and only the key holder can link them to the UID.
    Without: an unkeyed hash (``E`` + 10 hex), which anyone holding the UID can recompute."""
    if secret is not None:
        from echoavc.dicom.deid import pseudonym

        return pseudonym(secret, "study", str(study_uid))
    return "E" + hashlib.sha256(str(study_uid).encode()).hexdigest()[:10]


@dataclass
class FrameResult:
    """One frame's outcome; boxes are in standard-image pixels (the frame as the models see it)."""

    exam_id: str
    source: str
    frame_index: int
    status: str
    valve_score: float | None = None
    valve_box: list[float] | None = None
    probability: float | None = None
    decision: str = ""
    overlay: str = ""
    #: P(grade = 0..K-1) of the valve crop, when the bundle has a grade head (absent from the records otherwise)
    grade_probabilities: list[float] | None = None
    #: aortic valve closed | open | unknown, the source that decided it (echoavc.phase), end-diastole frame
    phase: str = ""
    phase_source: str = ""
    end_diastole: bool = False
    #: the clip's view and its probability, when the bundle has a view model or the header decided (else absent)
    view: str = ""
    view_probability: float | None = None

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]

    def record(self) -> dict:
        """The fields as a dict; ``grade_probabilities`` only when there are some (no-grade output unchanged)."""
        d = asdict(self)
        if d["grade_probabilities"] is None:
            del d["grade_probabilities"]
        if not d["view"]:
            del d["view"], d["view_probability"]
        return d

    def to_dict(self) -> dict:
        return {**self.record(), "status_text": self.status_text}


@dataclass
class ClipResult:
    """What one input produced: its frames, and the picture of its most telling frame."""

    source: str
    sha256: str
    exam_id: str
    frames: list[FrameResult]
    #: index into ``frames`` of the decided frame with the highest probability (None: no decided frame)
    best: int | None = None
    overlay: str = ""
    seconds: dict = field(default_factory=dict)
    #: the clip's valve phase: {source, how, notes (why earlier sources did not decide), frames (the policy)}
    phase: dict = field(default_factory=dict)
    #: the clip's view {view, probability, source (header | model), reason (why not screened; "" when taken)};
    #: None when nothing decided it (no view model, no header rule)
    view: dict | None = None
    #: the overlay of the ``best`` frame carries the classifier's Grad-CAM (drawn while the clip was screened)
    heat_map: bool = False

    def to_dict(self) -> dict:
        d = {"source": self.source, "sha256": self.sha256, "exam_id": self.exam_id, "best": self.best,
             "overlay": self.overlay, "seconds": self.seconds, "frames": [f.record() for f in self.frames],
             "phase": self.phase}
        if self.view is not None:
            d["view"] = self.view
        if self.heat_map:
            d["heat_map"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClipResult":
        return cls(d["source"], d["sha256"], d["exam_id"], [FrameResult(**f) for f in d["frames"]], d.get("best"),
                   d.get("overlay", ""), d.get("seconds", {}), d.get("phase", {}), d.get("view"),
                   bool(d.get("heat_map", False)))


# ---------------------------------------------------------------- the screener


def nearest_located(kept: Sequence[int], located: Sequence[int]) -> list[int]:
    """For each kept frame, the position in ``located`` of the located frame nearest to it."""
    loc = np.asarray(located)
    return [int(np.argmin(np.abs(loc - k))) for k in kept]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def drifted(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float], decide_conf: float, min_iou: float) -> bool:
    """Two located frames' (box, score) disagree: one has a valve and the other not, they fall on either side of
    ``decide_conf``, or their boxes overlap less than ``min_iou`` (the valve moved, or the view changed)."""
    fa, fb = np.isfinite(a[1]), np.isfinite(b[1])
    if fa != fb:
        return True
    if not fa:
        return False
    return (a[1] >= decide_conf) != (b[1] >= decide_conf) or box_iou(a[0], b[0]) < min_iou


def located_frames(kept: Sequence[int], limit: int) -> list[int]:
    """The frames the detector runs on: all, or ``limit`` evenly spaced ones."""
    if limit <= 0 or len(kept) <= limit:
        return list(kept)
    return sorted({kept[int(round(i))] for i in np.linspace(0, len(kept) - 1, limit)})


class Screener:
    """Standard frames in, frame results out, with a loaded bundle (numpy in, records out; no files)."""

    def __init__(self, bundle: Bundle, backend: str = "auto", settings: ScreeningSettings | None = None,
                 threads: int = 0, secret: bytes | None = None):
        self.bundle = bundle
        #: the ingest key's secret (exam ids become keyed pseudonyms); held in memory only
        self.secret = secret
        self.settings = settings or bundle.screening
        self.backend = bundle.backend(backend)
        self.detector = bundle.detector(self.backend, threads)
        self.classifier = bundle.classifier(self.backend, threads)
        #: the severity grade head (None: the bundle has none, and frames carry no grade); it reads the
        #: classifier's features from the same pass where the classifier's graph gives them (bundle format 3)
        self.grader = bundle.grader(self.backend, threads, classifier=self.classifier)
        #: the view model (None: the bundle has none, and every clip is screened as before)
        self.views = bundle.view_model(self.backend, threads)
        self.frame_threshold = bundle.frame_threshold
        #: the valve crop as the classifier was trained on it (the bundle's preprocessing record)
        pre = bundle.preprocess()
        self.crop, self.noise_reduction = pre.crop(), pre.noise_reduction

    def boxes(self, images: Sequence[np.ndarray], kept: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (n, 4), scores (n,)) per kept frame; NaN where no box reaches ``valve_conf``.

        With ``detect_frames``: the valve is located on that many evenly spaced frames, then between two located
        frames that disagree (:func:`drifted`) on the frame halfway, until neighbours agree or are adjacent; every
        other frame takes the box and score of its nearest located frame."""
        s = self.settings
        pos = {k: i for i, k in enumerate(kept)}
        found: dict[int, tuple[np.ndarray, float]] = {}

        def locate(frames: list[int]) -> None:
            top = self.detector.top([images[pos[k]] for k in frames], conf=s.valve_conf, batch_size=s.batch)
            found.update({k: (top.boxes[i], float(top.scores[i])) for i, k in enumerate(frames)})

        locate(located_frames(kept, s.detect_frames))
        while s.detect_frames > 0:
            done = sorted(found, key=pos.get)
            more = [kept[(pos[a] + pos[b]) // 2] for a, b in zip(done, done[1:])
                    if pos[b] - pos[a] > 1 and drifted(found[a], found[b], s.decide_conf, s.track_iou)]
            if not more:
                break
            locate(more)
        located = sorted(found, key=pos.get)
        near = [located[i] for i in nearest_located(kept, located)]
        return (np.array([found[k][0] for k in near], dtype=float).reshape(-1, 4),
                np.array([found[k][1] for k in near], dtype=float))

    def probabilities(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """Calibrated P(calcified) for each image's box (NaN where there is no box)."""
        return self.crop_predictions(images, boxes)[0]

    def grade_probabilities(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """(n, K) calibrated grade probabilities for each image's box (NaN rows where there is no box)."""
        return self.crop_predictions(images, boxes, grade=True)[1]

    def crop_predictions(self, images: Sequence[np.ndarray], boxes: np.ndarray,
                         grade: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """P(calcified) (n,) and, with ``grade``, grade probabilities (n, K) per boxed image.

        NaN where there is no box. The probability averages the classifier's logits over the box's test boxes
        (the classifier's ``CropSettings.test_boxes``, 1 for older models); the grade head reads the box's own
        crop, the first of them, as it was fitted. The crops are made once for both; where the grade head reads
        the classifier's pooled features, the backbone also runs once.
        """
        shared = grade and self.grader.classifier is self.classifier
        n = self.classifier.boxes_per_probability
        p = np.full(len(images), np.nan)
        g = np.full((len(images), self.grader.n_classes), np.nan) if grade else None
        has = [i for i in range(len(images)) if np.isfinite(boxes[i]).all()]
        for j in range(0, len(has), self.settings.batch):
            idx = has[j:j + self.settings.batch]
            crops = np.stack([prepare_crop(images[i], b, self.crop, self.noise_reduction)
                              for i in idx for b in self.classifier.test_boxes_of(boxes[i])])
            if shared:
                p[idx], features = self.classifier.predict_proba_and_features(crops, per_box=n)
                g[idx] = self.grader.from_features(features)
                continue
            p[idx] = self.classifier.predict_proba(crops, per_box=n)
            if grade:
                g[idx] = self.grader.predict_proba(crops[::n])
        return p, g

    def screen(self, images: Sequence[np.ndarray], kept: Sequence[int], exam_id: str, source: str,
               gate=None) -> list[FrameResult]:
        """One clip's frames through the detector and the classifier. ``gate``: the clip's frame policy
        (:class:`echoavc.phase.policy.PolicyGate`), read between them so that the models skip the frames it
        leaves out (those frames come back ``other_phase``: with box and valve score where the detector saw them,
        never with a probability); None: every frame is located and classified."""
        n = len(images)
        look = gate.to_locate() if gate is not None else None
        idx = list(range(n)) if look is None else [i for i in range(n) if look[i]]
        boxes, scores = np.full((n, 4), np.nan), np.full(n, np.nan)
        if idx:
            b, sc = self.boxes([images[i] for i in idx], [kept[i] for i in idx])
            boxes[idx], scores[idx] = b, sc
        shown = [[round(float(v), 2) for v in boxes[i]] if np.isfinite(scores[i]) else None for i in range(n)]
        read = gate.to_classify(shown) if gate is not None else [True] * n
        probs, grades = self.crop_predictions(images, np.where(np.asarray(read, bool)[:, None], boxes, np.nan),
                                              grade=self.grader is not None)
        out = []
        for i, k in enumerate(kept):
            if look is not None and not look[i]:
                out.append(FrameResult(exam_id, source, int(k), OTHER_PHASE))
                continue
            if not np.isfinite(scores[i]):
                out.append(FrameResult(exam_id, source, int(k), "no_valve"))
                continue
            if not read[i]:
                out.append(FrameResult(exam_id, source, int(k), OTHER_PHASE, round(float(scores[i]), 5), shown[i]))
                continue
            status = "decided" if scores[i] >= self.settings.decide_conf else "low_confidence"
            p = float(probs[i])
            decision = ("calcified" if p >= self.frame_threshold else "not calcified") if status == "decided" else ""
            out.append(FrameResult(exam_id, source, int(k), status, round(float(scores[i]), 5), shown[i],
                                   round(p, 6), decision,
                                   grade_probabilities=None if grades is None else
                                   [round(float(v), 6) for v in grades[i]]))
        return out


def heat_map(classifier, image: np.ndarray, box) -> np.ndarray:
    """Grad-CAM of the classifier's logit for ``box`` (``Classifier.grad_cam``: autograd with PyTorch, the closed
    form with ONNX), mapped onto the standard image (0 outside the crop)."""
    from echoavc.preprocess.crop import crop_to_image

    cam, _ = classifier.grad_cam(classifier.prepare(image, box))
    return crop_to_image(cam, box, image.shape[:2], classifier.crop.margin)
