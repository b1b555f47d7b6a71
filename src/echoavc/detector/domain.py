"""Detector training transforms aimed at real scanners (both opt-in, ``DetectorSettings``).

A detector trained on synthetic frames only meets real scanners with other grey maps, gains, speckle, resolutions,
colour maps and things drawn over the field. Both sets of albumentations transforms here are applied on the fly by
Ultralytics' training loader (its ``augmentations`` argument) on top of its own mosaic/scale/translate/brightness,
and change pixels only (the boxes stay as they are: no spatial transform, which would switch Ultralytics to its
box-transforming path).

- ``domain_randomisation``: vary the look at random: intensity curves (gamma, brightness/contrast, CLAHE), blur,
  speckle-like multiplicative noise, lower resolution, JPEG, colour-map swaps (tints, channel shifts, grey).
- ``style_from``: give training frames the look of the user's own unlabelled frames (the standard frames of an
  ``echoavc ingest`` output folder): per-channel histogram matching (``histogram``) or the swap of the lowest
  spatial frequencies of the amplitude spectrum (``fourier``, Fourier domain adaptation), each against a reference
  frame drawn at random.

Measured with benchmarks/bench_sim2real.py (docs/synth.md, "Sim-to-real").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # before the import: it checks for updates online
from albumentations import ImageOnlyTransform  # noqa: E402
from albumentations.augmentations.mixing.domain_adaptation_functional import (  # noqa: E402
    apply_histogram, fourier_domain_adaptation)

from echoavc.errors import EchoAVCError  # noqa: E402

STYLE_METHODS = ("histogram", "fourier")
#: Reference frames kept in memory (evenly spaced over the folder's frames), at this side in pixels.
STYLE_MAX_REFERENCES = 200
STYLE_REFERENCE_SIDE = 256


def domain_randomisation_transforms() -> list:
    """The albumentations transforms (a fresh list: Ultralytics composes and seeds them)."""
    import albumentations as A

    return [
        A.RandomGamma(gamma_limit=(60, 170), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.35, p=0.5),
        A.CLAHE(clip_limit=(1, 3), p=0.15),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.25),
        A.MultiplicativeNoise(multiplier=(0.75, 1.25), per_channel=False, elementwise=True, p=0.25),
        A.Downscale(scale_range=(0.4, 0.8), p=0.2),
        A.ImageCompression(quality_range=(40, 95), p=0.2),
        A.OneOf([A.ToSepia(), A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20), A.ToGray()], p=0.15),
    ]


def style_reference_paths(folder: str | Path, limit: int = STYLE_MAX_REFERENCES) -> list[Path]:
    """The standard frames listed by an ``echoavc ingest`` output folder's manifest.csv (at most ``limit``,
    evenly spaced); a clear error when the folder is not one or lists no readable frame."""
    import csv

    folder = Path(folder)
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise EchoAVCError("not an echoavc ingest output folder (no manifest.csv): --style-from takes the folder "
                           "that `echoavc ingest --out` wrote", folder)
    with manifest.open(newline="") as f:
        paths = [folder / r["image_path"] for r in csv.DictReader(f) if r.get("image_path")]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise EchoAVCError("the ingest manifest lists no frame that exists here", manifest)
    if len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit).round()]
    return paths


def load_style_references(folder: str | Path) -> list[np.ndarray]:
    """The reference frames as BGR uint8 arrays (the channel order of Ultralytics' loader), STYLE_REFERENCE_SIDE
    square (the standard frames are square)."""
    import cv2

    refs = []
    for p in style_reference_paths(folder):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise EchoAVCError("not a readable image (listed in the ingest manifest)", p)
        refs.append(cv2.resize(img, (STYLE_REFERENCE_SIDE, STYLE_REFERENCE_SIDE), interpolation=cv2.INTER_AREA))
    return refs


def style_transforms(folder: str | Path, method: str = "histogram", p: float = 0.5) -> list:
    """The transform that restyles a training frame after a random reference frame of ``folder`` (checked now,
    read in each loader process on first use)."""
    if method not in STYLE_METHODS:
        raise EchoAVCError(f"style method must be one of {', '.join(STYLE_METHODS)}, not {method!r}")
    style_reference_paths(folder)  # a clear error now rather than in a loader process
    return [StyleFromFrames(folder=str(folder), method=method, p=p)]


class StyleFromFrames(ImageOnlyTransform):
    """Histogram matching (blend 0.5-1) or Fourier domain adaptation (beta 0.01-0.05: the half-width of the swapped
    low-frequency square as a fraction of the side, the look rather than the anatomy of the reference) against a
    random frame of an ingest output folder. Its arguments are plain values, so Ultralytics can store it in its run
    arguments and rebuild it (albumentations' HistogramMatching/FDA with reference images cannot be serialised);
    the references are read on first use, in each loader process."""

    def __init__(self, folder: str = "", method: str = "histogram", p: float = 0.5):
        super().__init__(p=p)
        self.folder, self.method = folder, method
        self._refs = None

    def get_params(self):
        if self._refs is None:
            self._refs = load_style_references(self.folder)
        return {"ref": self.py_random.randrange(len(self._refs)),
                "amount": self.py_random.uniform(0.5, 1.0) if self.method == "histogram"
                else self.py_random.uniform(0.01, 0.05)}

    def apply(self, img, ref: int = 0, amount: float = 1.0, **params):
        import cv2

        target = self._refs[ref]
        if target.shape[:2] != img.shape[:2]:
            target = cv2.resize(target, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
        if img.ndim == 2 or img.shape[-1] == 1:
            target = cv2.cvtColor(target, cv2.COLOR_BGR2GRAY).reshape(img.shape)
        if self.method == "histogram":
            return apply_histogram(img, target, amount)
        return np.clip(fourier_domain_adaptation(img, target, amount), 0, 255).astype(img.dtype)

    def get_transform_init_args_names(self):
        return ("folder", "method")
