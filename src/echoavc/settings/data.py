"""Settings of the data stages: cone, ingest, synthetic cohorts, dataset, split, augmentation, crops."""

from __future__ import annotations

from dataclasses import dataclass, field

from echoavc.errors import EchoAVCError
from echoavc.settings.base import COORDINATE_SPACES, LABEL_IDS, STANDARD_SIZE, SYNTH_ANATOMIES, UNKNOWN_VIEWS, _check


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
    #: "classic" (the default) or "realistic": thick speckled tissue bands at the valve level, more views,
    #: zoomed aortic-root views, vendor-like grey maps and overlays inside the field (docs/synth.md, sim-to-real).
    anatomy: str = "classic"
    #: Cardiac cycles each clip spans (1: one beat, as before; more: clips holding several beats; classic anatomy).
    beats_per_clip: float = 1.0
    #: Vary how each clip records its cardiac timing (docs/phase.md): R-wave timing or an ECG waveform in the
    #: header or none, Frame Time Vector, the ECG on screen drawn or not, its colour, sweep speed and marker.
    phase_variety: bool = False

    def __post_init__(self):
        if not 0.25 <= self.beats_per_clip <= 10:
            raise EchoAVCError(f"beats_per_clip must be within 0.25..10, got {self.beats_per_clip}")
        if self.beats_per_clip != 1.0 and self.anatomy != "classic":
            raise EchoAVCError("beats_per_clip other than 1 needs the classic anatomy (the realistic one spans one beat)")
        _check(self, choices={"anatomy": SYNTH_ANATOMIES}, shares=("prevalence", "progression_probability", "distractor_fraction", "zoom_fraction",
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


#: the most boxes ``CropSettings.test_boxes`` may average over
MAX_TEST_BOXES = 32


@dataclass(frozen=True)
class CropSettings:
    """Valve crops for the classifier (paper: 224x224)."""

    size: int = 224
    #: Margin around the box, as a share of its longer side, on every side.
    margin: float = 0.1
    #: Random shift and resize of the box, as a share of its size (0: none); training part only.
    jitter: float = 0.0
    #: Boxes one probability is averaged over when the model predicts: the box itself and ``test_boxes - 1``
    #: fixed shifts and resizes within ``jitter`` (``preprocess.crop.averaged_boxes``), their logits averaged. The
    #: classifier's probability moves with where the detector puts the box; the average reads the valve rather
    #: than the box's placement (docs/classifier.md). 1: the box alone.
    test_boxes: int = 1

    def __post_init__(self):
        if not 1 <= int(self.test_boxes) <= MAX_TEST_BOXES:
            raise EchoAVCError(f"CropSettings.test_boxes must be 1 to {MAX_TEST_BOXES}, not {self.test_boxes!r}")
        if self.test_boxes > 1 and not self.jitter > 0:
            raise EchoAVCError("CropSettings.test_boxes above 1 needs jitter > 0 (the boxes are shifted within it)")
