"""The severity grade (0 none, 1 mild, 2 moderate, 3 severe): an ordinal head on the binary classifier's frozen
pooled features.

The binary network is trained exactly as before and not touched here (its training, calibration, thresholds and
decisions stay as they are); the grade head reads the dense layer's input (the pooled backbone features) and is a
cumulative-link (proportional-odds) model, one weight vector and ordered cut points::

    cumulative logit k = (x_std . w - cut_k) / T       P(grade > k) = sigmoid(cumulative logit k), k = 0..K-2

so P(grade > k) falls with k for every crop (the classes' probabilities are never negative). ``x_std`` is the
feature standardised with the training mean and sd; the L2 strength is chosen on the validation patients
(log-loss), then the temperature T on the same validation crops (or, when the classifier was cross-validated
because its validation part was too small, on out-of-fold logits of a patient-grouped cross-validation of the
head). Files, beside the classifier's (never a pickle)::

    grade.safetensors   weight, cutpoints, feature_mean, feature_std
    grade.json          format, classes, temperature, feature, fit and calibration records, counts per grade
    grade.onnx          crops -> cumulative_logits (before T): the backbone again + the head; only where the
                        classifier's ONNX graph has no ``features`` output (format-2 bundles, older folders)

A crop's grade is the median of its class distribution (the smallest k with P(grade <= k) >= 0.5), which for a
cumulative-link model is the class that minimises the expected absolute error. An exam's grade is the median of
its decided frames' pooled distribution (:func:`exam_grade`): the normalised geometric mean of the frames' class
probabilities raised to an exam-level sharpness s, P(exam grade = k) ~ exp(s * mean_f log P_f(k)), with s fitted
on the validation exams' log-loss (``exam_pooling`` in grade.json). Frames of one exam agree far more than
independent looks would (s is about 1.5 for six frames, where independent frames would give 6), and more than a
plain mean says (s = 1 left the exam distributions too flat: their median fell to the middle grades). Heads
fitted before this rule have no ``exam_pooling`` and keep the arithmetic mean of the frames' distributions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.lazy import lazy_exports

__all__ = ["GradeHead", "GradeModel", "fit_ordinal", "ordinal_nll", "class_probabilities", "median_grade",
           "exam_grade", "pool_frames", "fit_exam_sharpness", "fit_grade_head", "pooled_features", "NOT_TRAINED",
           "GRADE_STATE", "GRADE_META", "GRADE_ONNX", "GRADE_FORMAT", "has_grade", "grade_note"]

GRADE_STATE = "grade.safetensors"
GRADE_META = "grade.json"
GRADE_ONNX = "grade.onnx"
GRADE_FORMAT = "echoavc-grade/1"
#: what a bundle and classifier say when there was nothing to learn a grade from
NOT_TRAINED = "grade: not trained (no grades in the labels)"


# ---------------------------------------------------------------- the ordinal model (numpy in, numpy out)


def class_probabilities(cum_logits) -> np.ndarray:
    """(N, K) class probabilities from (N, K-1) cumulative logits (P(grade > k) = sigmoid)."""
    z = np.asarray(cum_logits, dtype=float)
    s = 1.0 / (1.0 + np.exp(-z))
    upper = np.concatenate([np.ones((len(s), 1)), s], axis=1)
    lower = np.concatenate([s, np.zeros((len(s), 1))], axis=1)
    return np.clip(upper - lower, 0.0, 1.0)


def median_grade(probs) -> np.ndarray:
    """The median class of each row of (N, K) class probabilities: the smallest k with P(grade <= k) >= 0.5."""
    p = np.asarray(probs, dtype=float)
    return (np.cumsum(p, axis=1) < 0.5 - 1e-12).sum(axis=1).astype(int)


def ordinal_nll(cum_logits, grades) -> float:
    """Mean negative log-likelihood of integer ``grades`` under (N, K-1) cumulative logits."""
    p = class_probabilities(cum_logits)
    g = np.asarray(grades, dtype=int)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(g)), g], 1e-12))))


def _cut_points(raw: np.ndarray) -> np.ndarray:
    # ordered by construction: the first cut, then positive steps (softplus)
    return np.r_[raw[0], raw[0] + np.cumsum(np.logaddexp(0.0, raw[1:]) + 1e-4)]


def _nll_and_grad(params: np.ndarray, x: np.ndarray, g: np.ndarray, n_classes: int, l2: float):
    d = x.shape[1]
    w, raw = params[:d], params[d:]
    n = len(g)
    z = (x @ w)[:, None] - _cut_points(raw)[None, :]
    s = 1.0 / (1.0 + np.exp(-z))
    upper = np.concatenate([np.ones((n, 1)), s], axis=1)[np.arange(n), g]  # P(grade > g - 1)
    lower = np.concatenate([s, np.zeros((n, 1))], axis=1)[np.arange(n), g]  # P(grade > g)
    p = np.maximum(upper - lower, 1e-12)
    loss = -np.mean(np.log(p)) + 0.5 * l2 * w @ w
    ds = s * (1.0 - s)
    dz = np.zeros_like(z)  # d loss / d z, per sample and cut
    rows = np.arange(n)
    has_up, has_low = g > 0, g < n_classes - 1
    dz[rows[has_up], g[has_up] - 1] = -ds[rows[has_up], g[has_up] - 1] / p[has_up]
    dz[rows[has_low], g[has_low]] = ds[rows[has_low], g[has_low]] / p[has_low]
    dz /= n
    grad_w = x.T @ dz.sum(axis=1) + l2 * w
    dcut = -dz.sum(axis=0)  # d loss / d cut_k
    tail = np.cumsum(dcut[::-1])[::-1]  # sum over k >= j
    grad_raw = np.r_[dcut.sum(), tail[1:] / (1.0 + np.exp(-raw[1:]))]
    return loss, np.r_[grad_w, grad_raw]


def fit_ordinal(x, grades, n_classes: int, l2: float = 1e-2, max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(weight (D,), cut points (K-1,), increasing) of the proportional-odds model on standardised features
    ``x`` (N, D), by L-BFGS on the mean negative log-likelihood + ``l2``/2 |w|^2."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=float)
    g = np.asarray(grades, dtype=int)
    if n_classes < 2:
        raise EchoAVCError("a grade model needs at least two grades")
    # start the cut points at the training data's cumulative shares (logit scale), the weight at zero
    share = np.array([(g > k).mean() for k in range(n_classes - 1)]).clip(0.02, 0.98)
    start = -np.log(share / (1 - share))
    raw0 = np.r_[start[0], np.log(np.expm1(np.maximum(np.diff(start), 0.05)))]
    res = minimize(_nll_and_grad, np.r_[np.zeros(x.shape[1]), raw0], args=(x, g, n_classes, l2), jac=True,
                   method="L-BFGS-B", options={"maxiter": max_iter})
    d = x.shape[1]
    return res.x[:d].copy(), _cut_points(res.x[d:])


def fit_grade_temperature(raw_cum_logits, grades) -> float:
    """The T minimising the ordinal log-loss of ``raw_cum_logits / T`` (keeps every crop's order)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(raw_cum_logits, dtype=float)
    res = minimize_scalar(lambda lt: ordinal_nll(z / math.exp(lt), grades), bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(res.x))


@dataclass
class GradeHead:
    """The fitted head: standardisation, weight, cut points, temperature; ``meta`` is grade.json's record."""

    weight: np.ndarray
    cutpoints: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    temperature: float = 1.0
    meta: dict | None = None

    @property
    def n_classes(self) -> int:
        return len(self.cutpoints) + 1

    @property
    def exam_pooling(self) -> dict | None:
        """How an exam pools its frames' distributions (None: the arithmetic mean of heads fitted before)."""
        return (self.meta or {}).get("exam_pooling")

    def raw_logits(self, features) -> np.ndarray:
        x = (np.asarray(features, dtype=float) - self.feature_mean) / self.feature_std
        return (x @ self.weight)[:, None] - self.cutpoints[None, :]

    def probabilities(self, features) -> np.ndarray:
        """(N, K) calibrated class probabilities of pooled features (N, D)."""
        return class_probabilities(self.raw_logits(features) / self.temperature)

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        from echoavc.files import atomic_write_text, atomic_write_with

        folder = Path(folder)
        state = {k: np.ascontiguousarray(getattr(self, k), dtype=np.float32)
                 for k in ("weight", "cutpoints", "feature_mean", "feature_std")}
        atomic_write_with(folder / GRADE_STATE, lambda tmp: save_file(state, str(tmp)))
        meta = {**(self.meta or {}), "format": GRADE_FORMAT, "classes": list(range(self.n_classes)),
                "temperature": self.temperature}
        atomic_write_text(folder / GRADE_META, json.dumps(meta, indent=1, default=_json_default) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "GradeHead":
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            meta = json.loads((folder / GRADE_META).read_text())
        except (OSError, ValueError):
            raise EchoAVCError("unreadable grade record", folder / GRADE_META) from None
        if meta.get("format") != GRADE_FORMAT:
            raise EchoAVCError(f"not an echoavc grade head (format {meta.get('format')!r})", folder / GRADE_META)
        try:
            st = load_file(str(folder / GRADE_STATE))
        except Exception:
            raise EchoAVCError("unreadable grade weights", folder / GRADE_STATE) from None
        head = cls(*(st[k].astype(np.float64) for k in ("weight", "cutpoints", "feature_mean", "feature_std")),
                   float(meta.get("temperature", 1.0)), meta)
        if len(meta.get("classes", [])) != head.n_classes or head.weight.shape != head.feature_mean.shape:
            raise EchoAVCError("grade weights disagree with grade.json", folder / GRADE_STATE)
        return head


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def has_grade(folder: str | Path) -> bool:
    """True when a classifier folder holds a grade head."""
    return (Path(folder) / GRADE_META).is_file() and (Path(folder) / GRADE_STATE).is_file()


def grade_note(folder: str | Path) -> dict:
    """The grade head's summary for bundle.json (or the 'not trained' note)."""
    if not has_grade(folder):
        return {"trained": False, "note": NOT_TRAINED}
    m = json.loads((Path(folder) / GRADE_META).read_text())
    return {"trained": True, "classes": m.get("classes"), "model": m.get("model"),
            "calibration": {"method": m.get("calibration"), "temperature": m.get("temperature"),
                            "data": m.get("calibration_data")},
            "exam_pooling": m.get("exam_pooling"), "counts": m.get("counts"), "validation": m.get("validation")}


# ---------------------------------------------------------------- features of the frozen network


def pooled_features(model, crops: np.ndarray, mean, std, batch: int = 64) -> np.ndarray:
    """The dense layer's input (pooled backbone features) of prepared crops (N, S, S) uint8, in eval mode."""
    import torch

    from echoavc.preprocess.crop import normalise

    was = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(normalise(crops[i:i + batch], mean, std))
            out.append(model.pooled(model.features(x)).double().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros((0, model.n_features))


# ---------------------------------------------------------------- exam grade


def pool_frames(frame_probabilities, pooling: dict | None = None) -> np.ndarray:
    """An exam's class distribution from its frames' (N, K): ``pooling`` {"kind": "geometric", "sharpness": s}
    gives exp(s * mean log p) normalised; None (heads fitted before the rule) the arithmetic mean."""
    p = np.asarray(frame_probabilities, dtype=float)
    if not pooling:
        return p.mean(axis=0)
    if pooling.get("kind") != "geometric":
        raise EchoAVCError(f"unknown exam pooling {pooling.get('kind')!r} in {GRADE_META}")
    lp = float(pooling["sharpness"]) * np.log(np.maximum(p, 1e-9)).mean(axis=0)
    q = np.exp(lp - lp.max())
    return q / q.sum()


def fit_exam_sharpness(frame_probabilities_by_exam, grades) -> float:
    """The sharpness s minimising the exams' log-loss of the geometric pooling (one parameter, on validation)."""
    from scipy.optimize import minimize_scalar

    logs = [np.log(np.maximum(np.asarray(p, dtype=float), 1e-9)).mean(axis=0) for p in frame_probabilities_by_exam]
    g = np.asarray(grades, dtype=int)

    def nll(log_s):
        z = np.exp(log_s) * np.array(logs)
        z -= z.max(axis=1, keepdims=True)
        return float(-np.mean(z[np.arange(len(g)), g] - np.log(np.exp(z).sum(axis=1))))

    return float(math.exp(minimize_scalar(nll, bounds=(-2.0, 2.5), method="bounded").x))


def exam_grade(frame_probabilities, pooling: dict | None = None) -> tuple[int, np.ndarray]:
    """(grade, class probabilities) of an exam: the median class of its decided frames' pooled distribution
    (:func:`pool_frames`; ``pooling`` is the head's ``exam_pooling``)."""
    pooled = pool_frames(frame_probabilities, pooling)
    return int(median_grade(pooled[None])[0]), pooled


# fitting and serving live beside this module (to keep it short) and import it: loaded on first use
__getattr__, __dir__ = lazy_exports(globals(), {"fit_grade_head": "grade_fit", "GradeModel": "grade_model"})
