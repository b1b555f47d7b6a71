"""Settings of the two models: the calcification classifier and the valve detector, with their presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from collections.abc import Mapping

from echoavc.errors import EchoAVCError
from echoavc.settings.base import (BALANCES, CALIBRATIONS, CROSS_VALIDATE, MONITORS, ROTATIONS, THRESHOLD_RULES,
                                   _check, from_dict)
from echoavc.settings.data import CropSettings

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
    #: Networks trained (seeds ``seed``, ``seed + 1``, ...) and served as one: their mean logit, calibrated on
    #: validation as one model (``echoavc.classifier.ensemble``). One seed moved exam AUROC by 0.03 on tuning
    #: cohorts; two averaged kept the better seed's level (docs/screening.md). Costs a training and an inference each.
    members: int = 1
    #: torch threads (0: every available core).
    threads: int = 0
    #: Weight of an auxiliary ordinal loss (grades 0-3, a cumulative link on the pooled features) added to the
    #: binary loss while the network trains, on crops whose labels carry a grade. 0, or labels without grades:
    #: the binary loss alone, the network exactly as before. It shapes the features the grade head reads
    #: (docs/classifier.md, "Severity grade"); the binary output, calibration and threshold are fitted as always.
    grade_loss: float = 0.0

    def __post_init__(self):
        if not (isinstance(self.members, int) and self.members >= 1):
            raise EchoAVCError(f"ClassifierSettings.members must be a whole number >= 1, not {self.members!r}")
        if not self.grade_loss >= 0:
            raise EchoAVCError(f"ClassifierSettings.grade_loss must be 0 or more, not {self.grade_loss!r}")
        _check(self, {"pooling": CLASSIFIER_POOLINGS, "balance": BALANCES, "rotation": ROTATIONS,
                      "monitor": MONITORS, "calibration": CALIBRATIONS, "threshold_rule": THRESHOLD_RULES,
                      "cross_validate": CROSS_VALIDATE}, shares=("min_recall", "fixed_threshold"))


#: Named presets: field overrides of ``ClassifierSettings``.
CLASSIFIER_PRESETS: dict[str, dict] = {
    # the paper: 224, batch 1, 50 epochs (its 80/20 image split is the "paper" protocol of the experiments)
    "paper": {},
    # trains in minutes on 2 CPU cores without pretrained weights (tuned on synthetic cohorts, docs/classifier.md)
    "cpu": {"backbone": "mobilenetv3_small_100", "pooling": "avg", "crop": CropSettings(size=128, margin=0.1,
            jitter=0.1, test_boxes=8), "epochs": 30, "batch": 16, "lr": 2e-3, "patience": 8, "rotation": "online",
            "balance": "weights", "dropout": 0.2, "pretrained": "none", "monitor": "auroc", "grade_loss": 1.0},
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
    #: Opt-in domain randomisation on top of the online augmentation (albumentations: intensity curves, blur,
    #: speckle-like noise, resolution, colour maps; detector/domain.py). Measured: docs/synth.md.
    domain_randomisation: bool = False
    #: Opt-in style from the user's own unlabelled frames: an ``echoavc ingest`` output folder whose standard frames
    #: training frames are matched to ("" : off; detector/domain.py). Measured: docs/synth.md.
    style_from: str = ""
    #: histogram (per-channel histogram matching) | fourier (low-frequency amplitude swap, FDA).
    style_method: str = "histogram"
    #: Share of training frames restyled.
    style_p: float = 0.5
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
        _check(self, {"style_method": ("histogram", "fourier")}, shares=("conf", "min_score", "nms_iou", "style_p"))


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


# ----------------------------------------------------------------------------- severity grade (docs/classifier.md)


@dataclass(frozen=True)
class GradeSettings:
    """The grade head on the trained classifier's frozen pooled features (``echoavc.classifier.grade``); fitted
    after the binary classifier when the labels carry grades, without changing it."""

    #: L2 strengths tried; the one with the lowest validation (or out-of-fold) ordinal log-loss is kept (1 was the
    #: top of the grid once and was chosen; 3 was chosen on the tuning study when the grid went on).
    l2: tuple[float, ...] = (1e-2, 1e-1, 1.0, 3.0, 10.0)
    #: Augmented passes over the training crops (the classifier's jitter and rotation) added to the clean one.
    copies: int = 2
    #: temperature (one parameter on the cumulative logits, keeps every ranking) | none.
    calibration: str = "temperature"
    #: Fewer graded validation crops than this (or one grade only): choose and calibrate by cross-validation.
    min_val_crops: int = 20

    def __post_init__(self):
        if self.calibration not in ("temperature", "none"):
            raise ValueError(f"grade calibration must be temperature or none, not {self.calibration!r}")


# ----------------------------------------------------------------------------- view classifier (docs/views.md)


@dataclass(frozen=True)
class ViewSettings:
    """``echoavc views train``: the view network (``echoavc.views``), a small timm net on the standard image
    downscaled to ``input_size`` grey pixels, with five classes (psax_av, psax_mid, plax, a4c, other)."""

    backbone: str = "mobilenetv3_small_050"
    #: side of the square grey input: the 640 px standard image downscaled (area interpolation)
    input_size: int = 128
    #: from scratch the net needs many passes: 10 epochs reached 0.62 validation clip accuracy, 30 epochs 0.90, 40
    #: epochs at lr 3e-3 (with milder speckle noise) 0.95 on the view benchmark's training studies (docs/views.md)
    epochs: int = 40
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    #: training part only: random shift/rotation/scale, gain, gamma, blur and speckle noise each epoch
    augment: bool = True
    #: frames of a clip the view net reads when screening (evenly spaced; 0: all); their mean probability
    #: decides the clip's view
    frames_per_clip: int = 8
    seed: int = 0
    #: torch threads while training (0: torch's default)
    threads: int = 0

    def __post_init__(self):
        if self.input_size < 32 or self.epochs < 1 or self.batch < 1 or self.frames_per_clip < 0:
            raise ValueError("view settings: input_size >= 32, epochs >= 1, batch >= 1, frames_per_clip >= 0")
