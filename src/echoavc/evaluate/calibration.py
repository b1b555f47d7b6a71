"""Calibration: reliability bins, expected calibration error, temperature scaling, isotonic regression.

A screening probability is only useful if 0.8 means "calcified about 80% of the time". Fit calibration
maps on validation data and apply them to the test set unchanged, like thresholds.
"""

from __future__ import annotations

import numpy as np

from echoavc.files import atomic_write_with

__all__ = [
    "calibration_bins",
    "expected_calibration_error",
    "reliability_diagram",
    "fit_temperature",
    "apply_temperature",
    "logit",
    "fit_isotonic",
    "apply_isotonic",
]


def _inputs(y_true, p_score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(p_score, dtype=float)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError("y_true and p_score must be one-dimensional and the same length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 labels")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_score must be probabilities in [0, 1]")
    return y.astype(float), p


def calibration_bins(y_true, p_score, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins on [0, 1] (the last one closed): edges, count, mean predicted, fraction positive.

    Empty bins have count 0 and NaN means.
    """
    y, p = _inputs(y_true, p_score)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-open bins, except that p = 1.0 belongs to the last bin rather than an extra one
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        frac = np.where(count > 0, sum_y / count, np.nan)
    return {"lo": edges[:-1], "hi": edges[1:], "count": count, "mean_predicted": mean_p,
            "fraction_positive": frac}


def expected_calibration_error(y_true, p_score, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean of |fraction positive - mean predicted| over equal-width bins."""
    bins = calibration_bins(y_true, p_score, n_bins)
    keep = bins["count"] > 0
    gap = np.abs(bins["fraction_positive"][keep] - bins["mean_predicted"][keep])
    return float((bins["count"][keep] * gap).sum() / bins["count"].sum())


def reliability_diagram(y_true, p_score, path, n_bins: int = 10, title: str | None = None):
    """Write a reliability diagram (PNG) to ``path``; return ``(bins, ece)`` as ``calibration_bins`` does.

    The top panel plots fraction positive against mean predicted probability per bin (the diagonal is
    perfect calibration); the bottom panel shows how many cases each bin holds, since a bin of three
    cases says little.
    """
    # Figure + Agg canvas, not pyplot: no global backend switch, no window, safe in threads and tests.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bins = calibration_bins(y_true, p_score, n_bins)
    ece = expected_calibration_error(y_true, p_score, n_bins)
    fig = Figure(figsize=(4.5, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    keep = bins["count"] > 0
    width = bins["hi"] - bins["lo"]
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.bar(bins["lo"][keep], bins["fraction_positive"][keep], width=width[keep], align="edge",
            alpha=0.35, edgecolor="tab:blue", label="fraction positive")
    top.plot(bins["mean_predicted"][keep], bins["fraction_positive"][keep], "o-", color="tab:blue",
             label="by mean predicted")
    top.set_ylabel("fraction positive")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(title or f"Reliability (ECE {ece:.3f}, n = {int(bins['count'].sum())})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(bins["lo"], bins["count"], width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    return bins, ece


def logit(p, eps: float = 1e-7) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [eps, 1 - eps] so 0 and 1 stay finite."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    if z.ndim == 1:
        # binary cross-entropy of sigmoid(z), written with logaddexp so large |z| does not overflow
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return float(np.mean(lse - z[np.arange(z.shape[0]), y]))


def fit_temperature(logits, y, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)``.

    ``logits`` is ``(n,)`` for a binary model (sigmoid) or ``(n, classes)``; ``y`` holds 0/1 or class
    indices. T > 1 softens an over-confident model. The NLL is convex in 1/T, so a bounded 1-D search
    over log T finds the optimum; T sits at a bound when the validation set is perfectly separated.
    """
    z = np.asarray(logits, dtype=float)
    y = np.asarray(y)
    if z.ndim not in (1, 2) or z.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError("logits must be (n,) or (n, classes) with one label per row")
    if not np.isfinite(z).all():
        raise ValueError("logits hold NaN or infinite values")
    if z.ndim == 1 and not np.isin(y, (0, 1)).all():
        raise ValueError("binary logits need 0/1 labels")
    if z.ndim == 2 and (y.min() < 0 or y.max() >= z.shape[1] or not np.issubdtype(y.dtype, np.integer)):
        raise ValueError("labels must be class indices for (n, classes) logits")
    y = y.astype(float) if z.ndim == 1 else y.astype(int)
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    from scipy import optimize  # fitting only: applying a calibration needs no SciPy

    res = optimize.minimize_scalar(lambda t: _nll(z, y, float(np.exp(t))), bounds=(lo, hi),
                                   method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Calibrated probabilities: ``sigmoid(logits / T)`` for ``(n,)``, ``softmax`` rows for ``(n, classes)``."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    z = np.asarray(logits, dtype=float) / temperature
    if z.ndim == 1:
        # exp(-logaddexp(0, -z)) is sigmoid(z) without overflow at either end
        return np.exp(-np.logaddexp(0.0, -z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_isotonic(p_score, y_true):
    """A monotone map from any score (probability or logit) to probability, clipped at the ends.

    Uses scikit-learn's ``IsotonicRegression``.

    Isotonic regression is flexible and overfits small validation sets; prefer temperature scaling
    below a few hundred validation cases.
    """
    from sklearn.isotonic import IsotonicRegression

    y = np.asarray(y_true)
    p = np.asarray(p_score, dtype=float)
    if y.ndim != 1 or p.shape != y.shape or not np.isin(y, (0, 1)).all() or not np.isfinite(p).all():
        raise ValueError("need one finite score and one 0/1 label per row")
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)


def apply_isotonic(model, p_score) -> np.ndarray:
    """Apply a map from ``fit_isotonic`` to new scores."""
    return np.asarray(model.predict(np.asarray(p_score, dtype=float)), dtype=float)
