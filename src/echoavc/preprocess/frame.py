"""The standard frame: a clip's frames with everything outside the ultrasound cone black, grey files as
2-D, cropped to the cone and letterboxed to the standard square without distortion.

numpy in, numpy out. :class:`StandardFrame` is fitted once per clip (from the cone and a sample of its
frames) and applied to every frame; ``ingest`` writes its output as PNGs, ``predict`` uses it in memory,
so screening sees exactly the pixels the models were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from echoavc.cone.geometry import Cone
from echoavc.cone.transform import StandardTransform

__all__ = ["StandardFrame", "channels_equal", "chroma", "is_grey", "overlay_in_cone"]


@dataclass(frozen=True, eq=False)
class StandardFrame:
    """How one clip's frames become standard frames."""

    cone: Cone
    #: uint8 0/1, the cone in the original frame's pixels
    mask: np.ndarray
    transform: StandardTransform
    #: frames are made 2-D grey (colour files whose field is grey, and grey files)
    grey: bool
    #: marks burned in inside the field ("", "coloured marks", "static bright marks")
    overlay: str = ""

    @classmethod
    def fit(cls, cone: Cone, shape: tuple[int, int], size: int, grey: bool = False,
            overlay: str = "") -> "StandardFrame":
        """The standard frame of ``cone`` in frames of ``shape`` (H, W), ``size`` x ``size``."""
        mask = cone.mask(shape[:2]).astype(np.uint8)
        return cls(cone, mask, StandardTransform.fit(*cone.bbox(shape[:2]), size), grey, overlay)

    @classmethod
    def of_sample(cls, cone: Cone, sample: np.ndarray, size: int) -> "StandardFrame":
        """Fitted on a sample of a clip's frames (F, H, W[, 3]): grey or colour and marks judged on it."""
        frame = cls.fit(cone, sample.shape[1:3], size)
        grey = sample.ndim == 3 or is_grey(sample, frame.mask)
        return cls(cone, frame.mask, frame.transform, grey, overlay_in_cone(sample, frame.mask))

    def masked(self, frame: np.ndarray) -> np.ndarray:
        """The frame with everything outside the cone black (grey files as 2-D); the input is not changed."""
        if frame.shape[:2] != self.mask.shape:
            raise ValueError(f"frame shape {frame.shape[:2]} does not match the cone mask {self.mask.shape}")
        if self.grey and frame.ndim == 3:
            frame = frame[..., 0] if channels_equal(frame) else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return cv2.bitwise_and(frame, frame, mask=self.mask)

    def standard(self, frame: np.ndarray) -> np.ndarray:
        """The masked frame cropped to the cone and letterboxed to the standard square."""
        return self.transform.apply(self.masked(frame))

    def outline(self) -> np.ndarray:
        """The cone's outline (N, 2) in the standard square's pixels (for pictures)."""
        return self.transform.points_to_standard(np.asarray(self.cone.polygon, dtype=np.float64))


def channels_equal(frame: np.ndarray) -> bool:
    return bool(np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(frame[..., 1], frame[..., 2]))


def chroma(px: np.ndarray) -> np.ndarray:
    """Max minus min over the colour channels (..., 3), int16 (channel by channel: reducing the last axis is slow)."""
    c0, c1, c2 = px[..., 0], px[..., 1], px[..., 2]
    return np.maximum(np.maximum(c0, c1), c2).astype(np.int16) - np.minimum(np.minimum(c0, c1), c2)


def is_grey(sample: np.ndarray, mask: np.ndarray) -> bool:
    """A colour file whose field is grey (most B-mode files are stored as RGB or YBR)."""
    c = chroma(sample[:, mask.astype(bool)])
    # lossy YBR leaves a few levels of chroma; colour Doppler or marks leave much more
    return float(np.mean(c > 24)) < 0.002


def overlay_in_cone(sample: np.ndarray, mask: np.ndarray) -> str:
    """Detectable marks burned in inside the field (callipers, labels): a mask cannot remove these."""
    inside = mask.astype(bool)
    if sample.ndim == 4:
        px = sample[:, inside]
        coloured = chroma(px) > 60
        if 20 <= int(coloured.any(axis=0).sum()) and coloured.mean() < 0.05:
            return "coloured marks"
    if sample.shape[0] < 3:
        return ""  # too few frames to tell a static mark from tissue
    if sample.ndim == 4:
        grey = (px[..., 0].astype(np.float32) + px[..., 1] + px[..., 2]) / 3
    else:
        grey = sample[:, inside].astype(np.float32)
    static_bright = (grey.min(axis=0) >= 200) & (grey.std(axis=0) < 2.0)
    return "static bright marks" if int(static_bright.sum()) >= 30 else ""
