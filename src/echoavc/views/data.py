"""The view network's data: a dataset table's frames with a known view class, read once at the net's size.

Frames come from the table's ``view`` column (``dataset build --views``), mapped to the five classes by
:func:`echoavc.views.classes.view_class`; frames of unknown view are left out. A clip is one source file
(``source_sha256``); its patient is the table's ``patient_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from echoavc.errors import EchoAVCError
from echoavc.views.classes import VIEW_CLASSES, view_class

__all__ = ["ViewFrames", "view_frames", "augment_batch"]


@dataclass
class ViewFrames:
    """Frames (n, S, S) uint8 grey at the net's size, with class index, clip (source sha256) and patient."""

    images: np.ndarray
    labels: np.ndarray
    clips: np.ndarray
    patients: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "ViewFrames":
        return ViewFrames(self.images[mask], self.labels[mask], self.clips[mask], self.patients[mask])

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(VIEW_CLASSES)}


def view_frames(table, size: int, patients=None) -> ViewFrames:
    """The frames of ``table`` (a DatasetTable) with a known view class, of ``patients`` (all when None)."""
    f: pd.DataFrame = table.frame
    cls = f["view"].map(view_class)
    keep = cls.notna()
    if patients is not None:
        keep &= f["patient_id"].astype(str).isin({str(p) for p in patients})
    f, cls = f[keep], cls[keep]
    images = np.empty((len(f), size, size), np.uint8)
    for i, p in enumerate(f["image_path"]):
        path = table.image_file(p)
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise EchoAVCError("cannot read frame image", path)
        images[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    labels = np.array([VIEW_CLASSES.index(c) for c in cls], np.int64)
    return ViewFrames(images, labels, f["source_sha256"].astype(str).to_numpy(),
                      f["patient_id"].astype(str).to_numpy())


def augment_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training-only augmentation of grey frames (n, S, S) uint8 -> float32 [0, 1]: a small random shift,
    rotation and zoom about the centre, gain and gamma (scanner settings), and now and then blur or speckle-like
    multiplicative noise. No flips: the views' orientation is a convention scanners keep."""
    n, s = images.shape[:2]
    out = np.empty((n, s, s), np.float32)
    for i in range(n):
        ang, scale = rng.uniform(-12, 12), rng.uniform(0.85, 1.15)
        m = cv2.getRotationMatrix2D((s / 2, s / 2), ang, scale)
        m[:, 2] += rng.uniform(-0.08, 0.08, 2) * s
        img = cv2.warpAffine(images[i], m, (s, s), flags=cv2.INTER_LINEAR, borderValue=0).astype(np.float32) / 255
        if rng.uniform() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
        if rng.uniform() < 0.3:
            img = img * rng.gamma(16.0, 1 / 16, img.shape).astype(np.float32)  # speckle-like, sd 0.25
        img = np.clip(img * rng.uniform(0.7, 1.3), 0, 1) ** rng.uniform(0.6, 1.6)
        out[i] = img
    return out
