"""One home for settings, with the paper's values as defaults.

Each stage reads a frozen dataclass from here; the CLI options mirror the
fields, and ``dataclasses.replace`` gives typed overrides from Python.
Paper: Elvas et al. 2024 (shared/reference/elvas-2024-avc-echo-paper.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Side of the standard image (paper: 640x640, the YOLOv5 input, no distortion).
STANDARD_SIZE = 640


@dataclass(frozen=True)
class ConeSettings:
    """Finding the ultrasound field (the cone) in a frame."""

    #: Grey level above which a pixel can belong to the image field.
    foreground_level: int = 8
    #: Frames sampled from a clip to find its cone (once per clip, not per frame).
    sample_frames: int = 24
    #: Minimum share of the image the cone must cover to be believed.
    min_area_fraction: float = 0.05
    #: A fitted sector or rectangle is accepted when its IoU with the observed field is at least this.
    min_model_iou: float = 0.90
    #: Ultrasound regions smaller than this share of the image are ignored.
    min_region_fraction: float = 0.05


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
