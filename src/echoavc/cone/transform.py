"""Crop-and-letterbox to the standard square image, and back.

Coordinates are continuous pixel-edge coordinates: pixel (i, j) covers
[j, j+1) x [i, i+1). A box (x1, y1, x2, y2) in these coordinates maps through
the same affine map as a point, so boxes round-trip exactly.

The crop is a square window around the cone's bounding box, so one scale
serves both axes and the image is never distorted; the parts of the window
outside the original image are the letterbox padding (black).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class StandardTransform:
    """Original frame -> standard image: ``p_std = (p - crop_xy) * scale + pad_xy``."""

    crop_x: int  #: left edge of the cone's bounding box in the original frame
    crop_y: int  #: top edge
    crop_w: int  #: width of the cone's bounding box
    crop_h: int  #: height
    scale: float  #: standard pixels per original pixel, equal on both axes
    pad_x: float  #: where crop_x lands in the standard image
    pad_y: float  #: where crop_y lands
    size: int  #: side of the standard image

    @classmethod
    def fit(cls, crop_x: int, crop_y: int, crop_w: int, crop_h: int, size: int) -> "StandardTransform":
        """Centre the box in a square window whose side is the box's longer side."""
        if crop_w <= 0 or crop_h <= 0:
            raise ValueError(f"empty crop {crop_w}x{crop_h}")
        side = max(crop_w, crop_h)
        scale = size / side
        # integer window origin keeps the resampling aligned with the map
        win_x = crop_x - (side - crop_w) // 2
        win_y = crop_y - (side - crop_h) // 2
        return cls(
            int(crop_x), int(crop_y), int(crop_w), int(crop_h), scale,
            (crop_x - win_x) * scale, (crop_y - win_y) * scale, int(size),
        )

    # window in original coordinates (square, may reach outside the image)
    @property
    def window(self) -> tuple[int, int, int]:
        side = max(self.crop_w, self.crop_h)
        return (
            self.crop_x - int(round(self.pad_x / self.scale)),
            self.crop_y - int(round(self.pad_y / self.scale)),
            side,
        )

    def points_to_standard(self, points) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (p - (self.crop_x, self.crop_y)) * self.scale + (self.pad_x, self.pad_y)

    def points_to_original(self, points) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (p - (self.pad_x, self.pad_y)) / self.scale + (self.crop_x, self.crop_y)

    def box_to_standard(self, box) -> np.ndarray:
        """(x1, y1, x2, y2) in the original frame -> the standard image."""
        return self.points_to_standard(np.asarray(box, dtype=np.float64).reshape(2, 2)).reshape(4)

    def box_to_original(self, box) -> np.ndarray:
        return self.points_to_original(np.asarray(box, dtype=np.float64).reshape(2, 2)).reshape(4)

    def apply(self, image: np.ndarray, interpolation: int | None = None) -> np.ndarray:
        """Crop the window from ``image`` (H, W[, C]) and resize it to size x size."""
        x0, y0, side = self.window
        h, w = image.shape[:2]
        square = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
        if sx1 > sx0 and sy1 > sy0:
            square[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        if side == self.size:
            return square
        if interpolation is None:
            # area averaging when shrinking keeps speckle from aliasing
            interpolation = cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR
        return cv2.resize(square, (self.size, self.size), interpolation=interpolation)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StandardTransform":
        return cls(
            int(d["crop_x"]), int(d["crop_y"]), int(d["crop_w"]), int(d["crop_h"]),
            float(d["scale"]), float(d["pad_x"]), float(d["pad_y"]), int(d["size"]),
        )


def box_iou(a, b) -> float:
    """IoU of two (x1, y1, x2, y2) boxes."""
    ax1, ay1, ax2, ay2 = map(float, a)
    bx1, by1, bx2, by2 = map(float, b)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0

