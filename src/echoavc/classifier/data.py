"""Crops for the classifier: from a dataset table (standard images + valve boxes) or from a folder
written by ``echoavc dataset materialise``.

The crop itself (valve crop, noise reduction, normalisation) is :mod:`echoavc.preprocess.crop`, shared with
screening; ``prepare_crop``, ``subtract_minimum`` and ``normalise`` are re-exported here for older callers.

Training-time randomness (box jitter, rotation) comes only from a ``np.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from echoavc.dataset.split import Split
from echoavc.dataset.table import DatasetTable
from echoavc.errors import EchoAVCError
from echoavc.preprocess.crop import averaged_boxes, jitter_box, normalise, prepare_crop, subtract_minimum, valve_crop
from echoavc.settings import CropSettings

__all__ = ["Sample", "prepare_crop", "subtract_minimum", "rotate_crop", "normalise", "load_samples",
           "CropSource", "crops_from_folder", "expand_training"]


# ---------------------------------------------------------------- training-time augmentation


def rotate_crop(crop: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a crop about its centre (black corners), as the paper's rotated copies (+-10 degrees)."""
    if degrees == 0:
        return crop
    h, w = crop.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(degrees), 1.0)
    return cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# ---------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    """One valve crop to make: a table frame (or a copy of one), its label and the part it belongs to."""

    key: str
    patient_id: str
    study_id: str
    image_path: str
    box: tuple
    label: int
    grade: int | None = None
    vendor: str | None = None
    part: str = ""
    #: fixed rotation of this copy (the paper's rotated copies); 0 for originals
    angle: float = 0.0
    #: "original", "rotation+10", ..., with "__dupN" for balancing duplicates
    variant: str = "original"


def load_samples(table: DatasetTable, split: Split | None = None, fold: int | None = None) -> list[Sample]:
    """Every labelled valve frame of ``table`` as a ``Sample``, with its part from ``split`` (patient-level;
    ``fold`` as in ``Split.part_of``) or "" without a split. Vendor from the ingest manifest when present."""
    f = table.frame
    f = f[(f["role"] == "valve") & f["calcified"].notna()]
    if f.empty:
        raise EchoAVCError("the table has no labelled valve frames (role valve with a calcified label)")
    vendors = _vendors(table)
    out = []
    for r in f.to_dict("records"):
        part = split.part_of(r["patient_id"], fold) if split is not None else ""
        grade = None if pd.isna(r["grade"]) else int(r["grade"])
        out.append(Sample(r["key"], r["patient_id"], r["study_id"], r["image_path"],
                          (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"])), int(r["calcified"]),
                          grade, vendors.get(r["key"]), part))
    return out


def _vendors(table: DatasetTable) -> dict[str, str]:
    if table.ingest_dir is None or not (table.ingest_dir / "manifest.csv").is_file():
        return {}
    try:
        m = pd.read_csv(table.ingest_dir / "manifest.csv", usecols=["source_sha256", "frame_index", "manufacturer"],
                        dtype={"source_sha256": str, "manufacturer": str}, keep_default_na=False)
    except (ValueError, OSError):
        return {}
    return {f"{s}:{int(i)}": v for s, i, v in zip(m["source_sha256"], m["frame_index"], m["manufacturer"])}


def expand_training(samples: list[Sample], rotation_copies: tuple[float, ...] = (), balance: str = "none",
                    rng: np.random.Generator | None = None) -> list[Sample]:
    """The paper's dataset variants: add rotated copies of every sample (``rotation_copies``, degrees), then,
    with ``balance="duplicate"``, duplicate minority-class samples (after augmentation, as the paper's 234)
    until the classes are equal. Call it on the training part only (the paper's protocol calls it on
    the pooled images before its image-level split; that is the leak)."""
    from echoavc.dataset.augment import duplicate_minority

    out = list(samples)
    for s in samples:
        for a in rotation_copies:
            out.append(replace(s, angle=float(a), variant=f"rotation{a:+g}"))
    if balance == "duplicate":
        extra = duplicate_minority([s.label for s in out], rng or np.random.default_rng(0))
        out += [replace(out[i], variant=f"{out[i].variant}__dup{n}") for n, i in enumerate(extra)]
    return out


# ---------------------------------------------------------------- images in memory


class CropSource:
    """Grey context regions around each valve box, read once: enough to crop with any jitter up to
    ``max_jitter`` without re-reading the 640x640 frame."""

    def __init__(self, table: DatasetTable | None, crop: CropSettings, noise_reduction: bool, max_jitter: float = 0.0):
        self.table, self.crop, self.noise_reduction = table, crop, noise_reduction
        # room for the test boxes too (test_batch), which lie within the crop's jitter
        self.max_jitter = max(max_jitter, crop.jitter if crop.test_boxes > 1 else 0.0)
        self._regions: dict[str, tuple[np.ndarray, tuple]] = {}
        self._fixed: dict[tuple, np.ndarray] = {}

    def _region(self, s: Sample) -> tuple[np.ndarray, tuple]:
        got = self._regions.get(s.key)
        if got is None:
            path = self.table.image_file(s.image_path)
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise EchoAVCError("cannot read image", path)
            x1, y1, x2, y2 = s.box
            j = self.max_jitter
            pad = max(x2 - x1, y2 - y1) * (1.5 * j + self.crop.margin * (1 + j)) + 4
            rx1, ry1 = int(np.floor(x1 - pad)), int(np.floor(y1 - pad))
            rx2, ry2 = int(np.ceil(x2 + pad)), int(np.ceil(y2 + pad))
            H, W = img.shape
            region = np.zeros((ry2 - ry1, rx2 - rx1), np.uint8)
            sx1, sy1, sx2, sy2 = max(rx1, 0), max(ry1, 0), min(rx2, W), min(ry2, H)
            if sx2 > sx1 and sy2 > sy1:
                region[sy1 - ry1:sy2 - ry1, sx1 - rx1:sx2 - rx1] = img[sy1:sy2, sx1:sx2]
            # a validity mask travels as a second plane so padding beyond the frame stays "outside"
            inside = np.zeros_like(region)
            inside[sy1 - ry1:sy2 - ry1, sx1 - rx1:sx2 - rx1] = 255
            got = (np.stack([region, inside], -1), (x1 - rx1, y1 - ry1, x2 - rx1, y2 - ry1))
            self._regions[s.key] = got
        return got

    def crop_of(self, s: Sample, jitter: float = 0.0, rng: np.random.Generator | None = None,
                extra_angle: float = 0.0) -> np.ndarray:
        """The prepared crop of ``s`` (with its copy's rotation plus ``extra_angle``); jitter needs ``rng``."""
        if jitter > self.max_jitter + 1e-9:
            raise ValueError("jitter beyond the source's max_jitter")
        if jitter == 0 and extra_angle == 0:
            k = (s.key, s.angle)
            if k not in self._fixed:
                self._fixed[k] = self._make(s, 0.0, None, 0.0)
            return self._fixed[k]
        return self._make(s, jitter, rng, extra_angle)

    def _make(self, s: Sample, jitter: float, rng, extra_angle: float, at=None) -> np.ndarray:
        """``at``: this box (region coordinates) instead of the sample's own."""
        planes, box = self._region(s)
        if at is not None:
            box = at
        if jitter > 0:
            box = jitter_box(box, jitter, rng)
        both = valve_crop(planes, box, self.crop.size, self.crop.margin)
        out, valid = both[..., 0], both[..., 1] > 127
        if self.noise_reduction:
            out = subtract_minimum(out, valid)
        return rotate_crop(out, s.angle + extra_angle)

    def test_batch(self, samples: list[Sample]) -> np.ndarray:
        """(N * n, S, S) prepared crops of each sample's ``crop.test_boxes`` (n) boxes, a sample's n in a row (the
        box itself first): what the model averages one probability over (``preprocess.crop.averaged_boxes``); with
        n = 1 the same as :meth:`batch`."""
        n = self.crop.test_boxes
        out = np.empty((len(samples) * n, self.crop.size, self.crop.size), np.uint8)
        for i, s in enumerate(samples):
            out[i * n] = self.crop_of(s)
            if n > 1:
                boxes = averaged_boxes(self._region(s)[1], n, self.crop.jitter)
                for k in range(1, n):
                    out[i * n + k] = self._make(s, 0.0, None, 0.0, at=boxes[k])
        return out

    def batch(self, samples: list[Sample], jitter: float = 0.0, rng: np.random.Generator | None = None,
              rotation_deg: float = 0.0) -> np.ndarray:
        """(N, S, S) uint8 prepared crops; with ``rotation_deg`` > 0 each gets a random extra rotation."""
        out = np.empty((len(samples), self.crop.size, self.crop.size), np.uint8)
        for i, s in enumerate(samples):
            a = float(rng.uniform(-rotation_deg, rotation_deg)) if rotation_deg > 0 else 0.0
            out[i] = self.crop_of(s, jitter, rng if jitter > 0 else None, a)
        return out


def crops_from_folder(folder: str | Path, part: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Read the crops written by ``echoavc dataset materialise`` (``crops.csv`` + PNGs): (N, S, S) uint8 grey
    crops (as written: no noise reduction) and their rows."""
    folder = Path(folder)
    index = folder / "crops.csv"
    if not index.is_file():
        raise EchoAVCError("no crops.csv: not a materialised folder (echoavc dataset materialise)", folder)
    rows = pd.read_csv(index, dtype={"patient_id": str, "study_id": str, "key": str}, keep_default_na=False)
    if part is not None:
        rows = rows[rows["part"] == part].reset_index(drop=True)
    crops = []
    for f in rows["file"]:
        img = cv2.imread(str(folder / f), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise EchoAVCError("cannot read crop", folder / f)
        crops.append(img)
    if not crops:
        return np.zeros((0, 0, 0), np.uint8), rows
    return np.stack(crops), rows
