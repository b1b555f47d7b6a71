"""The valve crop, its mapping back onto the standard frame, and the classifier's input.

numpy in, numpy out. A *prepared crop* is a uint8 ``size x size`` grey image: the valve box plus
``margin`` (share of its longer side, every side), letterboxed without distortion (:func:`valve_crop`),
then, with ``noise_reduction``, the paper's step: subtract the minimum grey level of the crop's image
pixels (the black letterbox padding does not count). The network input is the prepared crop scaled to
[0, 1], copied to three channels and normalised with the stored mean and std (:func:`normalise`).
"""

from __future__ import annotations

import cv2
import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.settings import CropSettings
from echoavc.settings.data import MAX_TEST_BOXES

__all__ = ["valve_crop", "crop_geometry", "crop_to_image", "jitter_box", "averaged_boxes", "subtract_minimum",
           "prepare_crop", "normalise"]

#: (dx, dy, ds) of the fixed test boxes in units of the jitter, uniform in [-1, 1] from a fixed seed, the box
#: itself first: the same boxes on every run and machine (a random draw per frame would make the results vary)
_TEST_OFFSETS = np.vstack([np.zeros((1, 3)), np.random.default_rng(12345).uniform(-1.0, 1.0, (MAX_TEST_BOXES - 1, 3))])


def jitter_box(box, jitter: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """``box`` shifted and resized by up to ``jitter`` of its size (three draws from ``rng``)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    dx, dy, ds = rng.uniform(-jitter, jitter, size=3)
    cx, cy = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * h
    w, h = w * (1 + ds), h * (1 + ds)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def averaged_boxes(box, n: int, jitter: float) -> np.ndarray:
    """(n, 4): ``box`` itself and n - 1 fixed shifts and resizes of it by up to ``jitter`` of its size (the same
    kind of change :func:`jitter_box` draws in training), whose crops one probability averages."""
    if not 1 <= n <= MAX_TEST_BOXES:
        raise ValueError(f"n must be 1 to {MAX_TEST_BOXES}, not {n}")
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    d = _TEST_OFFSETS[:n] * jitter
    cx, cy = (x1 + x2) / 2 + d[:, 0] * w, (y1 + y2) / 2 + d[:, 1] * h
    ww, hh = w * (1 + d[:, 2]), h * (1 + d[:, 2])
    return np.stack([cx - ww / 2, cy - hh / 2, cx + ww / 2, cy + hh / 2], 1)


def valve_crop(image: np.ndarray, box, size: int = 224, margin: float = 0.1, jitter: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """The valve box plus ``margin`` (share of its longer side, every side), optionally jittered (shift and
    resize by up to ``jitter`` of its size, drawn from ``rng``), letterboxed to ``size`` x ``size`` keeping
    the aspect ratio. Parts outside the image are black."""
    if jitter > 0:
        if rng is None:
            raise ValueError("jitter needs an rng")
        box = jitter_box(box, jitter, rng)
    (x1, y1, x2, y2), (ox, oy, nw, nh) = crop_geometry(box, size, margin)
    H, W = image.shape[:2]
    region = np.zeros((y2 - y1, x2 - x1) + image.shape[2:], dtype=image.dtype)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, W), min(y2, H)
    if sx2 > sx1 and sy2 > sy1:
        region[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    interp = cv2.INTER_AREA if size < max(region.shape[:2]) else cv2.INTER_LINEAR
    resized = cv2.resize(region, (nw, nh), interpolation=interp)
    out = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    out[oy:oy + nh, ox:ox + nw] = resized
    return out


def crop_geometry(box, size: int, margin: float) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Where :func:`valve_crop` takes its pixels from: the image window (x1, y1, x2, y2; may leave the image)
    and where the window lands in the square crop (x offset, y offset, width, height)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    m = margin * max(x2 - x1, y2 - y1)
    x1, y1, x2, y2 = (int(np.floor(x1 - m)), int(np.floor(y1 - m)), int(np.ceil(x2 + m)), int(np.ceil(y2 + m)))
    rw, rh = max(1, x2 - x1), max(1, y2 - y1)
    k = size / max(rh, rw)
    nw, nh = max(1, int(round(rw * k))), max(1, int(round(rh * k)))
    return (x1, y1, x1 + rw, y1 + rh), ((size - nw) // 2, (size - nh) // 2, nw, nh)


def crop_to_image(values: np.ndarray, box, image_shape: tuple[int, int], margin: float) -> np.ndarray:
    """Map a per-pixel map of a :func:`valve_crop` (e.g. a Grad-CAM heat map) back onto the image it was cut
    from: float32 ``image_shape``, zero outside the crop's window."""
    size = values.shape[0]
    (x1, y1, x2, y2), (ox, oy, nw, nh) = crop_geometry(box, size, margin)
    window = cv2.resize(values[oy:oy + nh, ox:ox + nw].astype(np.float32), (x2 - x1, y2 - y1),
                        interpolation=cv2.INTER_LINEAR)
    H, W = image_shape[:2]
    out = np.zeros((H, W), np.float32)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, W), min(y2, H)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1:sy2, sx1:sx2] = window[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1]
    return out


def subtract_minimum(crop: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """The paper's noise reduction: subtract the minimum grey level (over ``valid`` pixels) so the darkest
    tissue becomes black. Pixels outside ``valid`` (letterbox padding) stay 0."""
    crop = np.asarray(crop)
    if valid is None:
        valid = np.ones(crop.shape[:2], bool)
    if not valid.any():
        return crop.copy()
    lo = crop[valid].min()
    out = np.where(valid, crop.astype(np.int16) - int(lo), 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def prepare_crop(image: np.ndarray, box, crop: CropSettings, noise_reduction: bool = True,
                 jitter: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """A prepared crop (uint8, ``crop.size`` square, grey) of ``box`` (x1, y1, x2, y2, standard pixels) in
    ``image`` (grey or BGR). ``jitter`` shifts and resizes the box by up to that share (needs ``rng``)."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[..., 0]
    if img.dtype != np.uint8:
        raise EchoAVCError(f"images must be 8-bit, got {img.dtype}")
    if jitter > 0:
        # draw the jittered box once, then crop image and validity mask with it
        box = jitter_box(box, jitter, rng)
    out = valve_crop(img, box, crop.size, crop.margin)
    if noise_reduction:
        valid = valve_crop(np.full(img.shape[:2], 255, np.uint8), box, crop.size, crop.margin) > 127
        out = subtract_minimum(out, valid)
    return out


def normalise(crops: np.ndarray, mean, std) -> np.ndarray:
    """(N, S, S) or (S, S) uint8 -> float32 (N, 3, S, S): scaled to [0, 1], three channels, (x - mean) / std."""
    x = np.asarray(crops)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"crops must be (N, S, S) or (S, S) grey, got shape {x.shape}")
    x = x.astype(np.float32) / 255.0
    m = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x[:, None] - m) / s, dtype=np.float32)
