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
        counts = _ColourCounts(sample, frame.mask)
        grey = sample.ndim == 3 or counts.grey()
        return cls(cone, frame.mask, frame.transform, grey, counts.overlay())

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
    return _ColourCounts(sample, mask).grey()


def overlay_in_cone(sample: np.ndarray, mask: np.ndarray) -> str:
    """Detectable marks burned in inside the field (callipers, labels): a mask cannot remove these."""
    return _ColourCounts(sample, mask).overlay()


class _ColourCounts:
    """Chroma counts over a sample's field, made once for both is_grey and overlay_in_cone.

    Frame by frame on the field's bounding box with OpenCV (a gather of every field pixel of every
    frame cost 20-80 ms per clip); the counts, and so both answers, are those of ``chroma`` over the field.
    """

    def __init__(self, sample: np.ndarray, mask: np.ndarray):
        inside = mask.astype(bool)
        self.n = int(np.count_nonzero(inside))
        x, y, w, h = cv2.boundingRect(inside.view(np.uint8))
        self.sample, self.box = sample, (slice(y, y + h), slice(x, x + w))
        self.inside = inside[self.box].view(np.uint8)
        self.frames = sample.shape[0]
        self.grey_pixels = self.coloured = self.coloured_any = 0
        first = None
        if sample.ndim == 4 and self.n:
            any_coloured = np.zeros_like(self.inside)
            for f in sample[(slice(None),) + self.box]:
                c0, c1, c2 = cv2.split(np.ascontiguousarray(f[..., :3]))
                first = (c0, c1, c2) if first is None else first
                c = cv2.subtract(cv2.max(cv2.max(c0, c1), c2), cv2.min(cv2.min(c0, c1), c2))
                self.grey_pixels += cv2.countNonZero(cv2.bitwise_and(cv2.compare(c, 24, cv2.CMP_GT), self.inside))
                col = cv2.bitwise_and(cv2.compare(c, 60, cv2.CMP_GT), self.inside)
                self.coloured += cv2.countNonZero(col)
                any_coloured |= col
            self.coloured_any = cv2.countNonZero(any_coloured)
        self.first = first

    def grey(self) -> bool:
        # lossy YBR leaves a few levels of chroma; colour Doppler or marks leave much more
        if not self.n:
            return False  # as np.mean of nothing: nan, not below the share
        return self.grey_pixels / (self.frames * self.n) < 0.002

    def overlay(self) -> str:
        if self.sample.ndim == 4 and self.n:
            if 20 <= self.coloured_any and self.coloured / (self.frames * self.n) < 0.05:
                return "coloured marks"
        if self.frames < 3 or not self.n:
            return ""  # too few frames to tell a static mark from tissue (or no field at all)
        # a static bright mark is bright in the first frame: only those pixels are followed through the clip
        sub = self.sample[(slice(None),) + self.box]
        if sub.ndim == 4:
            c0, c1, c2 = self.first if self.first is not None else cv2.split(np.ascontiguousarray(sub[0, ..., :3]))
            if c0.dtype == np.uint8:
                bright = cv2.add(cv2.add(c0, c1, dtype=cv2.CV_16U), c2, dtype=cv2.CV_16U) >= 600  # mean >= 200
            else:
                bright = (c0.astype(np.float32) + c1 + c2) / 3 >= 200
            bright &= self.inside.astype(bool)
        else:
            bright = (sub[0] >= 200) & self.inside.astype(bool)
        ys, xs = np.nonzero(bright)
        if ys.size < 30:
            return ""
        px = sub[:, ys, xs]
        if sub.ndim == 4:
            grey = (px[..., 0].astype(np.float32) + px[..., 1] + px[..., 2]) / 3
        else:
            grey = px.astype(np.float32)
        static_bright = (grey.min(axis=0) >= 200) & (grey.std(axis=0) < 2.0)
        return "static bright marks" if int(static_bright.sum()) >= 30 else ""
