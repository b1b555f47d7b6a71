"""One home for settings, with the paper's values as defaults.

Each stage reads a frozen dataclass from here; the CLI options mirror the
fields, and ``dataclasses.replace`` gives typed overrides from Python.
Paper: Elvas et al. 2024 (shared/reference/elvas-2024-avc-echo-paper.md).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

from echoavc.errors import EchoAVCError

#: Side of the standard image (paper: 640x640, the YOLOv5 input, no distortion).
STANDARD_SIZE = 640

# ----------------------------------------------------------------------------- allowed values
# One home: the dataclasses check them on construction and the CLI offers them as choices.

COORDINATE_SPACES = ("original", "standard")
LABEL_IDS = ("auto", "original", "pseudonymous")
UNKNOWN_VIEWS = ("unlabelled", "background")
BALANCES = ("duplicate", "weights", "none")
ROTATIONS = ("copies", "online", "none")
MONITORS = ("loss", "auroc")
CALIBRATIONS = ("temperature", "isotonic", "none")
THRESHOLD_RULES = ("recall", "youden", "fixed")
CROSS_VALIDATE = ("auto", "always", "never")
EXAM_AGGREGATES = ("mean", "median", "max")
EXAM_THRESHOLD_RULES = ("recall", "youden", "frame")


def _check(obj, choices: dict[str, tuple] | None = None, shares: tuple[str, ...] = ()) -> None:
    """Raise one line for a field outside its allowed values (``choices``) or outside [0, 1] (``shares``)."""
    for name, allowed in (choices or {}).items():
        value = getattr(obj, name)
        if value not in allowed:
            raise EchoAVCError(f"{type(obj).__name__}.{name} must be one of {', '.join(allowed)}, not {value!r}")
    for name in shares:
        value = getattr(obj, name)
        if not 0.0 <= value <= 1.0:
            raise EchoAVCError(f"{type(obj).__name__}.{name} must be between 0 and 1, not {value!r}")


@dataclass(frozen=True)
class ConeSettings:
    """Finding the ultrasound field (the cone) in a frame."""

    #: Grey level above which a pixel can belong to the image field (find_cone goes lower, to just
    #: above the background's noise, when the background far from any signal is cleaner).
    foreground_level: int = 8
    #: Frames sampled from a clip to find its cone (once per clip, not per frame).
    sample_frames: int = 24
    #: Minimum share of the image the cone must cover to be believed.
    min_area_fraction: float = 0.05
    #: A fitted sector or rectangle is accepted when its IoU with the observed field is at least this.
    min_model_iou: float = 0.90
    #: A model that holds the whole observed field is still accepted down to this IoU (a dark or
    #: fading far field leaves a right sector emptier than the field's hull); it gets a flag.
    min_model_fill: float = 0.80
    #: Ultrasound regions smaller than this share of the image are ignored.
    min_region_fraction: float = 0.05
    #: Share of a region's rectangle that must lie inside the pixel matrix for it to be trusted
    #: (regions of cropped or rescaled images point outside them).
    min_region_inside: float = 0.5
    #: A pixel whose grey level changes by more than this over the sampled frames is moving
    #: speckle: finds the dim parts of a field that stay under foreground_level. (JPEG ringing
    #: beside bright edges also moves, by 2-5 levels in SonoSite clips; edge_contrast drops it.)
    motion_level: int = 3
    #: Field edges are placed on pixels at least this share of the brightest pixel within 7 px
    #: (the JPEG fringe beside a bright edge is fainter).
    edge_contrast: float = 0.1
    #: A pixel brighter than this that never changes over the sampled frames is an overlay
    #: (text, marks, depth scale), not echo signal; used only when the clip moves.
    overlay_level: int = 32
    #: Opening kernel as a share of the image's shorter side: removes text strokes, ECG traces,
    #: callipers and depth dots (1/70 is 7 px at 480 rows).
    morph_fraction: float = 1 / 70


@dataclass(frozen=True)
class IngestSettings:
    """``echoavc ingest``: which frames to keep and how to write them."""

    #: Side of the square standard image.
    size: int = STANDARD_SIZE
    #: Keep every n-th frame of a clip (1 keeps all).
    every_nth: int = 1
    #: Modalities to keep; an empty tuple keeps all. Ultrasound only by default.
    modalities: tuple[str, ...] = ("US",)
    #: PNG compression level (0-9): 1 is fast and still lossless.
    png_compression: int = 1
    #: Also write de-identified DICOM with the pixels outside the cone blacked out.
    write_dicom: bool = False
    #: Write a before/after picture per file for a person to check.
    qc: bool = False
    cone: ConeSettings = field(default_factory=ConeSettings)


@dataclass(frozen=True)
class SynthSettings:
    """``echoavc synth``: the synthetic cohort generator (docs/synth.md)."""

    #: Share of patients with a calcified aortic valve at their first exam (paper: 36% of images).
    prevalence: float = 0.36
    #: Frames per exam, over all its files (about 10 in the paper's exams).
    frames_per_exam: int = 10
    #: Exams per patient (1 = cross-sectional; more = follow-up over years).
    exams_per_patient: int = 1
    #: Chance that the grade rises by one between consecutive exams of a patient.
    progression_probability: float = 0.4
    #: Among calcified valves: share of grades 1, 2, 3 (grade 1: one small spot; docs/synth.md, "Grade 1").
    grade_weights: tuple[float, float, float] = (0.40, 0.35, 0.25)
    #: Share of an exam's frames showing other views (mid short axis, long axis, apical 4-chamber).
    distractor_fraction: float = 0.4
    #: Share of aortic-valve clips acquired zoomed on the valve.
    zoom_fraction: float = 0.2
    #: Share of files carrying a SequenceOfUltrasoundRegions.
    us_regions_fraction: float = 0.6
    #: Worker processes (0: one per available core).
    workers: int = 0

    def __post_init__(self):
        _check(self, shares=("prevalence", "progression_probability", "distractor_fraction", "zoom_fraction",
                             "us_regions_fraction"))


# ----------------------------------------------------------------------------- dataset (docs/dataset.md)


@dataclass(frozen=True)
class MaxqdaColumns:
    """Column names of a MAXQDA-style CSV of valve rectangles (configurable: real exports differ)."""

    #: Image key: ``<source_sha256>:<frame_index>``, the ingest ``image_path``, or its file name.
    image: str = "image"
    x: str = "x"
    y: str = "y"
    width: str = "width"
    height: str = "height"
    #: Optional per-row coordinate space (``original`` | ``standard``); overrides ``--space``.
    space: str = "coordinate_space"
    #: Optional code column (MAXQDA's code name); only used to filter when ``codes`` is set.
    code: str = "code"
    #: Optional split key columns, used instead of ``image`` when present.
    source_sha256: str = "source_sha256"
    frame_index: str = "frame_index"
    #: Keep only rows with one of these codes (empty: keep all).
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelColumns:
    """Column names of the exam-level labels file. Each entry lists candidates, first present wins."""

    #: The exam: the original StudyInstanceUID (what ingest pseudonymises into ``study_id``).
    exam: tuple[str, ...] = ("study_instance_uid", "exam", "exam_id", "study_id", "StudyInstanceUID")
    #: The patient: the original PatientID.
    patient: tuple[str, ...] = ("patient_id", "patient", "PatientID")
    calcified: tuple[str, ...] = ("calcified", "label", "avc")
    grade: tuple[str, ...] = ("grade", "avc_grade")


@dataclass(frozen=True)
class DatasetSettings:
    """``echoavc dataset build``: joining manifest, boxes, labels and views, and what counts as a problem."""

    #: Space of the box file's coordinates unless a row says otherwise.
    space: str = "original"
    #: Ids in the labels file: "original" (pseudonymise with the key), "pseudonymous", or "auto".
    ids: str = "auto"
    #: Frames without a box whose view is unknown: "unlabelled" (not used for training) or "background".
    unknown_view: str = "unlabelled"
    #: A box may reach this far (standard pixels) outside the image before it is an error.
    box_tolerance_px: float = 0.5
    maxqda: MaxqdaColumns = field(default_factory=MaxqdaColumns)
    labels: LabelColumns = field(default_factory=LabelColumns)

    def __post_init__(self):
        _check(self, {"space": COORDINATE_SPACES, "ids": LABEL_IDS, "unknown_view": UNKNOWN_VIEWS})


@dataclass(frozen=True)
class SplitSettings:
    """The patient split (paper: 80/10/10 for the detector, 80/20 for the classifier)."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    #: Folds over the train+val patients (0 or 1: none).
    k: int = 5
    seed: int = 0


@dataclass(frozen=True)
class AugmentSettings:
    """The paper's four techniques (imgaug values) and the online alternative."""

    #: Translation as a share of the image side, applied to both axes (imgaug ``translate_percent``).
    translation: tuple[float, ...] = (0.2, -0.2)
    zoom: tuple[float, ...] = (0.5, 2.0)
    rotation_deg: tuple[float, ...] = (10.0, -10.0)
    gamma: tuple[float, ...] = (0.5, 1.2)
    #: A variant is rejected when a corner of its valve box leaves the image by more than this (pixels).
    inside_tolerance_px: float = 0.5
    #: Online augmentation: tries per image before the original is used unchanged.
    online_tries: int = 10


@dataclass(frozen=True)
class CropSettings:
    """Valve crops for the classifier (paper: 224x224)."""

    size: int = 224
    #: Margin around the box, as a share of its longer side, on every side.
    margin: float = 0.1
    #: Random shift and resize of the box, as a share of its size (0: none); training part only.
    jitter: float = 0.0


# ----------------------------------------------------------------------------- classifier (docs/classifier.md)

#: The paper's six backbones (timm names), in Table 4's order.
CLASSIFIER_BACKBONES = ("efficientnet_b0", "efficientnet_b4", "resnetv2_152", "resnetv2_50",
                        "mobilenetv3_small_100", "mobilenetv3_large_100")
#: Keras ``pooling=None | "max" | "avg"``: none flattens the feature map before the Dense(120) layer.
CLASSIFIER_POOLINGS = ("none", "max", "avg")


@dataclass(frozen=True)
class ClassifierSettings:
    """``echoavc classifier train``: the calcification classifier (paper: section 3, Fig. 9, Tables 3-4).

    Defaults are the paper's; ``CLASSIFIER_PRESETS`` holds ``paper``, ``cpu`` and ``smoke``.
    """

    preset: str = "paper"
    backbone: str = "efficientnet_b0"
    #: none | max | avg (Keras ``pooling``).
    pooling: str = "none"
    #: Width of the dense layer after the backbone (paper: 120), then ReLU and one logit.
    hidden: int = 120
    #: Dropout before the dense layer (0: none, as in the paper).
    dropout: float = 0.0
    #: "none": from scratch; a file path or the name of weights in the echoavc cache (``echoavc weights``);
    #: "auto": the cache's weights for the backbone if there, else from scratch (warning). Never downloads.
    pretrained: str = "none"
    #: Crop size, margin (share of the box's longer side) and box jitter (training part only: at screening
    #: time crops come from the detector, whose boxes are not perfect). Stored with the model.
    crop: CropSettings = field(default_factory=lambda: CropSettings(size=224, margin=0.1, jitter=0.1))
    #: The paper's noise reduction: subtract the crop's minimum grey level.
    noise_reduction: bool = True
    #: Per-channel normalisation after scaling to [0, 1] (ImageNet's, as timm's pretrained weights expect).
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: Training part only. "duplicate": copy minority-class crops until balanced (the paper); "weights": a
    #: weighted sampler; "none".
    balance: str = "duplicate"
    #: Rotation augmentation, training part only: the paper's fixed copies ("copies": +-``rotation_deg``),
    #: a random angle in +-``rotation_deg`` drawn each epoch ("online"), or "none".
    rotation: str = "copies"
    rotation_deg: float = 10.0
    epochs: int = 50
    #: Crops per training step (was ``batch_size``; classifier.json files with that name still read).
    batch: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-4
    #: Early stopping: epochs without a better validation ``monitor`` (0: never stop early).
    patience: int = 10
    #: What selects the best epoch: validation "loss" (log-loss) or "auroc" (ties: the lower loss).
    monitor: str = "loss"
    #: Probability calibration on validation (or pooled out-of-fold) logits: temperature | isotonic | none.
    calibration: str = "temperature"
    #: Threshold rule on validation: "recall" (highest threshold with recall >= min_recall), "youden",
    #: or "fixed" (``fixed_threshold``).
    threshold_rule: str = "recall"
    min_recall: float = 0.95
    fixed_threshold: float = 0.5
    #: Patient-grouped cross-validation (pooled out-of-fold predictions) instead of the validation part:
    #: "auto" (when the validation part has fewer than ``cv_min_val_patients`` patients or fewer than
    #: ``cv_min_val_positives`` calcified crops), "always", "never".
    cross_validate: str = "auto"
    cv_folds: int = 5
    cv_min_val_patients: int = 10
    cv_min_val_positives: int = 10
    seed: int = 0
    #: torch threads (0: every available core).
    threads: int = 0

    def __post_init__(self):
        _check(self, {"pooling": CLASSIFIER_POOLINGS, "balance": BALANCES, "rotation": ROTATIONS,
                      "monitor": MONITORS, "calibration": CALIBRATIONS, "threshold_rule": THRESHOLD_RULES,
                      "cross_validate": CROSS_VALIDATE}, shares=("min_recall", "fixed_threshold"))


#: Named presets: field overrides of ``ClassifierSettings``.
CLASSIFIER_PRESETS: dict[str, dict] = {
    # the paper: 224, batch 1, 50 epochs (its 80/20 image split is the "paper" protocol of the experiments)
    "paper": {},
    # trains in minutes on 2 CPU cores without pretrained weights (tuned on synthetic cohorts, docs/classifier.md)
    "cpu": {"backbone": "mobilenetv3_small_100", "pooling": "avg", "crop": CropSettings(size=128, margin=0.1,
            jitter=0.1), "epochs": 30, "batch": 16, "lr": 2e-3, "patience": 8, "rotation": "online",
            "balance": "weights", "dropout": 0.2, "pretrained": "none", "monitor": "auroc"},
    # for tests: seconds
    "smoke": {"backbone": "mobilenetv3_small_100", "pooling": "avg", "crop": CropSettings(size=64, margin=0.1,
              jitter=0.1), "epochs": 3, "batch": 8, "lr": 1e-3, "patience": 0, "rotation": "online",
              "balance": "duplicate", "pretrained": "none", "cv_folds": 2},
}


def classifier_preset(name: str, **overrides) -> ClassifierSettings:
    """``ClassifierSettings`` for a preset with typed overrides (``crop`` may be given as a dict)."""
    if name not in CLASSIFIER_PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {', '.join(CLASSIFIER_PRESETS)}")
    values = {**CLASSIFIER_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    if isinstance(values.get("crop"), Mapping):
        values["crop"] = from_dict(CropSettings, values["crop"])
    return dataclasses.replace(ClassifierSettings(), preset=name, **values)


# ----------------------------------------------------------------------------- detector (docs/detector.md)


@dataclass(frozen=True)
class OnlineAugmentSettings:
    """Ultralytics' own on-the-fly augmentation, used only when ``DetectorSettings.online_augment`` is on.

    Off, every one of these is 0: then the offline Table 1 augmentations are the only difference between
    experiments. Flips stay off even when on: echo views have a fixed left-right orientation.
    """

    mosaic: float = 1.0
    #: Final epochs without mosaic.
    close_mosaic: int = 5
    fliplr: float = 0.0
    flipud: float = 0.0
    hsv_h: float = 0.0
    hsv_s: float = 0.0
    hsv_v: float = 0.4
    scale: float = 0.5
    translate: float = 0.1
    degrees: float = 0.0

    def ultralytics_args(self, enabled: bool) -> dict:
        """The Ultralytics train arguments: these values, or all zero when ``enabled`` is False."""
        args = dataclasses.asdict(self)
        extra = {"mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0, "shear": 0.0, "perspective": 0.0, "bgr": 0.0}
        if not enabled:
            args = {k: 0 if k == "close_mosaic" else 0.0 for k in args}
        return {**args, **extra}


@dataclass(frozen=True)
class DetectorSettings:
    """``echoavc detector``: the valve detector (Ultralytics YOLO built from its yaml)."""

    #: Architecture: yolov5n | yolov5s | yolo11n | yolo11s (also yolov8n/s, m/l/x scales). The paper's YOLOv5s
    #: is built as Ultralytics' maintained anchor-free YOLOv5su and is named so in every output.
    model: str = "yolov5s"
    #: Training and inference image side (the standard 640 frames are resized to it).
    imgsz: int = 640
    batch: int = 32
    epochs: int = 75
    #: Early stop after this many epochs without improvement on validation (0: never).
    patience: int = 0
    #: Ultralytics optimiser name (``auto`` picks AdamW for short runs, SGD for long ones).
    optimizer: str = "auto"
    #: Initial learning rate, Ultralytics' ``lr0`` (used when ``optimizer`` is not ``auto``).
    lr: float = 0.01
    warmup_epochs: float = 3.0
    #: Ultralytics' on-the-fly augmentation (mosaic, scale, translate, HSV); off when reproducing Table 1.
    online_augment: bool = False
    augment: OnlineAugmentSettings = field(default_factory=OnlineAugmentSettings)
    #: Starting weights when no --weights is given: "none" (from scratch), a checkpoint path or cached weights name
    #: (``echoavc weights``), or "auto" (the cache's COCO weights if there, else from scratch). Never downloads.
    pretrained: str = "none"
    #: Data loader processes (0: in the main process).
    workers: int = 2
    #: Torch threads while training and predicting (0: every available core). On a machine shared with other
    #: busy processes, 1 can be several times faster than 2 (OpenMP threads wait on each other).
    threads: int = 0
    #: Hold decoded training images in memory (faster epochs on a small dataset).
    cache: bool = True
    #: Torch device: "" picks the first GPU when there is one, else the CPU.
    device: str = ""
    seed: int = 0
    #: Stop training after this many hours whatever the epoch (None: no cap).
    time_hours: float | None = None
    #: A box counts as a detection at this score or above (the top box is the one the pipeline crops).
    conf: float = 0.25
    #: Boxes kept per image (all scores down to ``min_score``): for mAP; the top box is the first.
    max_det: int = 10
    min_score: float = 0.001
    #: Non-maximum suppression IoU.
    nms_iou: float = 0.7
    #: Images per forward pass at prediction.
    predict_batch: int = 8

    def __post_init__(self):
        # pretrained is none | auto | a file | a cached name: detector.model.resolve_weights checks it
        _check(self, shares=("conf", "min_score", "nms_iou"))


#: Named presets. ``cpu`` was tuned on synthetic cohorts to reach the acceptance targets on 2 CPU cores in
#: minutes without pretrained weights (docs/detector.md); ``smoke`` only checks the plumbing.
DETECTOR_PRESETS: dict[str, DetectorSettings] = {
    # the paper: YOLOv5s (built as YOLOv5su), 640, batch 32, 75 epochs
    "paper": DetectorSettings(),
    # yolov5n at 192 px from scratch, mosaic/scale/translate on, 40 epochs (docs/detector.md: held-out mAP50 0.98)
    "cpu": DetectorSettings(model="yolov5n", imgsz=192, batch=16, epochs=40, online_augment=True,
                            optimizer="AdamW", lr=0.002, warmup_epochs=1.0),
    "smoke": DetectorSettings(model="yolov5n", imgsz=96, batch=8, epochs=2, workers=0, cache=False, threads=1,
                              pretrained="none", optimizer="AdamW", lr=0.002, warmup_epochs=0.0),
}


def detector_preset(name: str, **overrides) -> DetectorSettings:
    """``DetectorSettings`` of a preset with typed overrides (None values are ignored)."""
    if name not in DETECTOR_PRESETS:
        raise ValueError(f"unknown detector preset {name!r}: use one of {', '.join(DETECTOR_PRESETS)}")
    return dataclasses.replace(DETECTOR_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


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
    #: Locate the valve on at most this many evenly spaced frames of a clip and give each other frame the box
    #: of its nearest located frame (the valve barely moves in a short-axis clip); 0: every frame.
    detect_frames: int = 0
    #: Grad-CAM overlays for the frame that drives each exam's decision (needs the PyTorch classifier).
    explain: bool = True
    #: Frames per batch through the detector and the classifier.
    batch: int = 16

    def __post_init__(self):
        _check(self, {"exam_aggregate": EXAM_AGGREGATES, "exam_threshold_rule": EXAM_THRESHOLD_RULES},
               shares=("valve_conf", "decide_conf", "min_recall"))
        if self.decide_conf < self.valve_conf:
            raise EchoAVCError(f"decide_conf ({self.decide_conf}) must be at least valve_conf ({self.valve_conf}) "
                               "(--decide-conf, --valve-conf)")


# ----------------------------------------------------------------------------- from JSON back to settings

#: Field names renamed since files were first written, {class name: {old: new}}: files written before
#: still read (one convention: ``batch`` for items per step, ``lr`` for the learning rate).
RENAMED_FIELDS: dict[str, dict[str, str]] = {
    "ClassifierSettings": {"batch_size": "batch"},
    "DetectorSettings": {"lr0": "lr"},
}


def from_dict(cls, data: Mapping, where=None):
    """Settings of dataclass ``cls`` from their JSON form (``dataclasses.asdict`` after a JSON round trip).

    Nested settings are rebuilt from their dicts and lists become tuples where the field is a tuple; fields
    absent from ``data`` keep their defaults; old field names (``RENAMED_FIELDS``) are read as the new ones.
    An unknown field is an error naming ``where`` (the file), not silently dropped: it would change results.
    """
    if not isinstance(data, Mapping):
        raise EchoAVCError(f"{cls.__name__}: expected a JSON object, not {type(data).__name__}", where)
    renamed = RENAMED_FIELDS.get(cls.__name__, {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in names and renamed.get(k) not in names]
    if unknown:
        raise EchoAVCError(f"unknown {cls.__name__} field(s) {', '.join(map(str, unknown))} (written by another "
                           "echoavc version?)", where)
    values = {renamed[k]: v for k, v in data.items() if k not in names}  # old names first: the new ones win
    values.update({k: v for k, v in data.items() if k in names})
    return cls(**{k: _from_json(hints[k], v, where) for k, v in values.items()})


def _from_json(hint, value, where):
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_dict(hint, value, where)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


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
