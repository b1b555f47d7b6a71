"""The paper's heuristic baseline (Table 2), pure numpy: binarise the valve crop at a grey level and call
it calcified if any pixel is white; and a fairer variant whose threshold and minimum white area are
chosen on training patients only.

Paper (section 3): "pixels with higher value than the threshold would be set to 255 (white) and the
remaining ones would be set to 0 (black) ... If the image has at least one white pixel, the valve is
considered calcified." Thresholds 190, 200, 210, 220. So white means ``grey > threshold``.
Crops are grey (uint8); a colour crop is reduced to its minimum channel (white in RGB = white in all three).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PAPER_THRESHOLDS", "binarise", "white_area", "paper_call", "FairBaseline", "fit_fair_baseline"]

PAPER_THRESHOLDS = (190, 200, 210, 220)


def _grey(crops) -> np.ndarray:
    """Grey crops: (H, W) or (N, H, W) as given; colour (H, W, 3) or (N, H, W, 3) -> minimum channel,
    since a pixel is white only when every channel is."""
    x = np.asarray(crops)
    if x.ndim == 4 or (x.ndim == 3 and x.shape[-1] == 3 and min(x.shape[:2]) > 3):
        x = x.min(axis=-1)
    return x


def binarise(crop, threshold: float) -> np.ndarray:
    """255 where ``crop > threshold``, else 0 (uint8), as the paper's binarisation."""
    return np.where(_grey(crop) > threshold, 255, 0).astype(np.uint8)


def white_area(crops, threshold: float) -> np.ndarray:
    """Number of white pixels (``> threshold``) per crop: (N, H, W) -> (N,), (H, W) -> scalar array."""
    x = _grey(crops)
    if x.ndim == 2:
        return np.asarray((x > threshold).sum())
    return (x > threshold).reshape(len(x), -1).sum(axis=1)


def paper_call(crops, threshold: float) -> np.ndarray:
    """The paper's rule: calcified (True) when the crop has at least one white pixel."""
    return white_area(crops, threshold) >= 1


@dataclass(frozen=True)
class FairBaseline:
    """Calcified when at least ``min_area`` pixels are brighter than ``threshold`` (both fitted on training
    patients). ``score`` is the white-area share of the crop, a ranking for AUROC."""

    threshold: int
    min_area: int
    criterion: str = "balanced_accuracy"
    train_value: float = float("nan")

    def call(self, crops) -> np.ndarray:
        return white_area(crops, self.threshold) >= self.min_area

    def score(self, crops) -> np.ndarray:
        x = _grey(crops)
        per = x.shape[-1] * x.shape[-2]
        return white_area(crops, self.threshold) / per

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "min_area": self.min_area, "criterion": self.criterion,
                "train_value": self.train_value}


def fit_fair_baseline(crops, labels, thresholds=range(100, 256, 5), min_areas=None) -> FairBaseline:
    """Grid search on TRAINING crops for the (threshold, minimum white area) with the best balanced accuracy
    (ties: the higher threshold, then the smaller area). Never fit it on the crops you report."""
    y = np.asarray(labels).astype(bool)
    if y.all() or (~y).all():
        raise ValueError("fitting the baseline needs both classes")
    x = _grey(crops)
    if min_areas is None:
        min_areas = (1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200, 300, 500, 800)
    best = None
    for t in sorted(thresholds, reverse=True):
        area = white_area(x, t)
        for a in min_areas:
            pred = area >= a
            tpr = (pred & y).sum() / y.sum()
            tnr = (~pred & ~y).sum() / (~y).sum()
            ba = (tpr + tnr) / 2
            if best is None or ba > best[0] + 1e-12:
                best = (ba, int(t), int(a))
    return FairBaseline(best[1], best[2], "balanced_accuracy", float(best[0]))
