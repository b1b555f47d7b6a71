"""Probabilities calibrated on validation (or pooled out-of-fold) logits, and the decision threshold.

Both are fitted on data the network did not train on, never on the test part, and stored with the
model (``Calibration.to_dict``): the screening pipeline applies them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.evaluate.calibration import apply_temperature

__all__ = ["Calibration", "fit_calibration", "pick_threshold", "CALIBRATIONS", "THRESHOLD_RULES"]

from echoavc.settings import CALIBRATIONS, THRESHOLD_RULES  # noqa: E402  (the allowed values' one home)


def sigmoid(z) -> np.ndarray:
    return apply_temperature(np.asarray(z, dtype=float), 1.0)


@dataclass(frozen=True)
class Calibration:
    """logit -> probability. ``temperature``: sigmoid(z / T). ``isotonic``: a monotone step map on the logit,
    stored as its knots (``x``, ``y``; linear between knots, clipped at the ends, as scikit-learn's
    ``IsotonicRegression.predict``). ``none``: sigmoid(z)."""

    method: str = "none"
    temperature: float = 1.0
    x: tuple = field(default=())
    y: tuple = field(default=())

    def __call__(self, logits) -> np.ndarray:
        z = np.asarray(logits, dtype=float)
        if self.method == "temperature":
            return apply_temperature(z, self.temperature)
        if self.method == "isotonic":
            return np.interp(z, np.asarray(self.x, float), np.asarray(self.y, float))
        return sigmoid(z)

    def to_dict(self) -> dict:
        d = {"method": self.method}
        if self.method == "temperature":
            d["temperature"] = self.temperature
        if self.method == "isotonic":
            d["x"], d["y"] = list(self.x), list(self.y)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(d.get("method", "none"), float(d.get("temperature", 1.0)), tuple(d.get("x", ())),
                   tuple(d.get("y", ())))


def fit_calibration(logits, labels, method: str = "temperature") -> Calibration:
    """Fit ``method`` on validation logits and 0/1 labels."""
    # fitting only (training): serving a bundle applies a calibration and never loads SciPy
    from echoavc.evaluate import fit_isotonic, fit_temperature

    if method not in CALIBRATIONS:
        raise EchoAVCError(f"calibration must be one of {', '.join(CALIBRATIONS)}, not {method!r}")
    z = np.asarray(logits, dtype=float)
    y = np.asarray(labels).astype(int)
    if method == "none":
        return Calibration("none")
    if len(np.unique(y)) < 2:
        raise EchoAVCError("calibration needs both classes in the validation data")
    if method == "temperature":
        return Calibration("temperature", fit_temperature(z, y))
    iso = fit_isotonic(z, y)
    return Calibration("isotonic", x=tuple(float(v) for v in iso.X_thresholds_),
                       y=tuple(float(v) for v in iso.y_thresholds_))


def pick_threshold(labels, probabilities, rule: str = "recall", min_recall: float = 0.95,
                   fixed: float = 0.5) -> float:
    """The decision threshold on validation probabilities: ``recall`` = the highest threshold with recall >=
    ``min_recall`` (the screening default); ``youden``; ``fixed`` = ``fixed``."""
    from echoavc.evaluate import choose_threshold, youden  # training only: the intervals' SciPy

    if rule == "fixed":
        return float(fixed)
    if rule == "recall":
        return choose_threshold(labels, probabilities, min_recall)
    if rule == "youden":
        return youden(labels, probabilities)
    raise EchoAVCError(f"threshold rule must be one of {', '.join(THRESHOLD_RULES)}, not {rule!r}")
