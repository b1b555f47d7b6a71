"""Confidence intervals: exact and score intervals for proportions, and the patient bootstrap.

Small test sets are the rule in echocardiography, so every number echoavc reports carries an interval
(field notes, section 3, mistake 3). Proportions get Wilson and Clopper-Pearson intervals; every metric
gets a percentile bootstrap that resamples groups (patients), not rows, because images of one patient
are not independent.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from scipy import stats

__all__ = [
    "Interval",
    "wilson",
    "clopper_pearson",
    "proportion_interval",
    "proportion_intervals",
    "resample_groups",
    "percentile_interval",
    "bootstrap_by_group",
    "MIN_PATIENTS_PER_CLASS",
    "too_few_units",
    "units_per_class",
    "no_interval",
    "format_plain",
]

#: A bootstrap interval needs at least this many patients in each class (each stratum). With k patients in a
#: class, a resample draws one of them k times with probability k ** (1 - k): 1 at k = 1 (the interval is one
#: point, [x, x]), 1/2 at 2, 1/9 at 3, 1/64 at 4, 1/625 at 5. Over two classes that is 3.1% at 4, more than the
#: 2.5% tail a 95% interval's bound sits in, so below 5 a bound is one patient's value; no interval is given.
MIN_PATIENTS_PER_CLASS = 5


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    ``method`` names how ``lo``/``hi`` were made ("wilson", "clopper-pearson", "bootstrap-groups",
    "bootstrap-rows", "t-folds"); ``n`` is the number of units behind the estimate (rows, or groups for
    a group bootstrap); ``n_boot_valid`` is how many bootstrap resamples gave a defined value.
    """

    estimate: float
    lo: float
    hi: float
    method: str = ""
    n: int = 0
    n_boot_valid: int | None = None
    note: str = ""  # why there is no interval (bounds NaN), e.g. "too few patients: 1 per class, need 5"

    def format(self, digits: int = 2) -> str:
        """``0.91 [0.84, 0.96]``; "n/a" for an undefined estimate; ``0.75 [n/a (too few patients: ...)]``
        without an interval."""
        if not np.isfinite(self.estimate):
            return "n/a"
        f = f"{{:.{digits}f}}"
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return f.format(self.estimate) + (f" [n/a ({self.note})]" if self.note else " [n/a]")
        return f"{f.format(self.estimate)} [{f.format(self.lo)}, {f.format(self.hi)}]"

    def __str__(self) -> str:
        return self.format(2)

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def contains(self, value: float) -> bool:
        return bool(self.lo <= value <= self.hi)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_proportion(successes, n) -> tuple[int, int]:
    k, n_ = float(successes), float(n)
    if k != int(k) or n_ != int(n_):
        raise ValueError(f"successes and n must be whole numbers, got {successes!r} and {n!r}")
    k, n_ = int(k), int(n_)
    if n_ < 0 or k < 0 or k > n_:
        raise ValueError(f"need 0 <= successes <= n, got {k} of {n_}")
    return k, n_


def _alpha(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return 1.0 - level


def wilson(successes, n, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n``; ``(nan, nan)`` when ``n == 0``."""
    k, n = _check_proportion(successes, n)
    alpha = _alpha(level)
    if n == 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 and k = n the bounds are exactly 0 and 1; rounding would leave 1e-17 instead.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def clopper_pearson(successes, n, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval from beta quantiles; ``(nan, nan)`` when ``n == 0``.

    Recall 6/6 gives (0.541, 1.0): the lower bound is (alpha/2) ** (1/n) when every case is found.
    """
    k, n = _check_proportion(successes, n)
    alpha = _alpha(level)
    if n == 0:
        return (math.nan, math.nan)
    # beta(0, .) and beta(., 0) are degenerate; the exact bounds there are 0 and 1 by definition.
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2.0, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return (lo, hi)


def proportion_interval(successes, n, method: str = "wilson", level: float = 0.95) -> Interval:
    """``Interval`` for a proportion with ``method`` "wilson" or "clopper-pearson"."""
    k, n = _check_proportion(successes, n)
    if method == "wilson":
        lo, hi = wilson(k, n, level)
    elif method in ("clopper-pearson", "clopper_pearson"):
        method = "clopper-pearson"
        lo, hi = clopper_pearson(k, n, level)
    else:
        raise ValueError(f"unknown proportion interval {method!r}")
    est = k / n if n else math.nan
    return Interval(est, lo, hi, method, n)


def _wider(a: Interval, b: Interval) -> Interval:
    if not np.isfinite(a.width):
        return b
    if not np.isfinite(b.width):
        return a
    return a if a.width >= b.width else b


def proportion_intervals(successes, n, level: float = 0.95, bootstrap: Interval | None = None) -> dict[str, Interval]:
    """Every interval for a proportion, by method, plus ``"primary"``, the one to report.

    Keys: "wilson", "clopper-pearson", "bootstrap" (when given) and "primary". Exact and score
    intervals assume independent rows, which several images per patient break; a patient bootstrap
    handles that but collapses to a point at 0 and 1 (recall 6/6 gives [1, 1]). So the primary interval
    is the wider of a group bootstrap and Clopper-Pearson, and Clopper-Pearson when no group bootstrap
    is given.
    """
    k, n = _check_proportion(successes, n)
    est = k / n if n else math.nan
    out = {
        "wilson": Interval(est, *wilson(k, n, level), "wilson", n),
        "clopper-pearson": Interval(est, *clopper_pearson(k, n, level), "clopper-pearson", n),
    }
    out["primary"] = out["clopper-pearson"]
    if bootstrap is not None:
        out["bootstrap"] = bootstrap
        if bootstrap.method == "bootstrap-groups":
            out["primary"] = _wider(bootstrap, out["clopper-pearson"])
    return out


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def resample_groups(groups, n_boot: int = 2000, seed=0, strata=None) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_boot`` resamples of the groups with replacement.

    Returns ``(codes, counts)``: ``codes[i]`` is the group index of row ``i`` and ``counts[b, g]`` how
    many times group ``g`` was drawn in resample ``b``. Row weights for resample ``b`` are
    ``counts[b, codes]``: resampling a patient brings all of that patient's rows, as many times as the
    patient was drawn. ``groups=None`` treats every row as its own group (the ordinary row bootstrap).

    With ``strata`` (one label per row), each stratum's groups are resampled separately, keeping the
    number of groups per stratum fixed. A group's stratum is the largest label among its rows, so with
    0/1 labels a patient with any positive image is a positive patient.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    rng = _rng(seed)
    if groups is None:
        if strata is None:
            raise ValueError("give groups, or strata to fix the number of rows")
        codes = np.arange(len(strata))
    else:
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        codes = codes.ravel()
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups == 0:
        raise ValueError("no rows to resample")
    counts = np.zeros((n_boot, n_groups), dtype=np.int64)
    if strata is None:
        members = [np.arange(n_groups)]
    else:
        strata = np.asarray(strata)
        if strata.shape[0] != codes.shape[0]:
            raise ValueError("strata needs one label per row")
        _, s_codes = np.unique(strata, return_inverse=True)
        group_stratum = np.full(n_groups, -1)
        np.maximum.at(group_stratum, codes, s_codes.ravel())
        members = [np.flatnonzero(group_stratum == s) for s in np.unique(group_stratum)]
    offsets = (np.arange(n_boot) * n_groups)[:, None]
    for m in members:
        draws = m[rng.integers(0, m.size, size=(n_boot, m.size))]
        # bincount over (resample, group) cells counts repeated draws of one group (fancy += would not)
        counts += np.bincount((offsets + draws).ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups)
    return codes, counts


def percentile_interval(values, estimate: float, level: float = 0.95, method: str = "bootstrap",
                        n: int = 0) -> Interval:
    """Percentile interval of bootstrap ``values``; NaNs (undefined resamples) are dropped and counted.

    For level 0.95 this is the 2.5th to 97.5th percentile (not 5th-95th, which is a 90% interval).
    """
    alpha = _alpha(level)
    values = np.asarray(values, dtype=float).ravel()
    valid = values[np.isfinite(values)]
    if valid.size == 0:
        return Interval(float(estimate), math.nan, math.nan, method, n, 0)
    lo, hi = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(estimate), float(lo), float(hi), method, n, int(valid.size))


def too_few_units(per_class, unit: str = "patients", minimum: int = MIN_PATIENTS_PER_CLASS) -> str:
    """Why a bootstrap over units (patients) with ``per_class`` units in each class gives no interval, or ""
    when there are enough: "too few patients: 1 per class, need 5" (or "1 in a class" when they differ)."""
    per_class = [int(k) for k in per_class]
    k = min(per_class, default=0)
    if k >= minimum:
        return ""
    where = "" if len(per_class) < 2 else (" per class" if len(set(per_class)) == 1 else " in a class")
    return f"too few {unit}: {k}{where}, need {minimum}"


def no_interval(estimate: float, method: str, n: int, note: str) -> Interval:
    """The point estimate alone: NaN bounds and the reason (``Interval.note``)."""
    return Interval(float(estimate), math.nan, math.nan, method, n, None, note)


def units_per_class(codes: np.ndarray, labels, classes=(0, 1)) -> list[int]:
    """For each of ``classes`` (``labels`` sorted, when None), how many units (``codes``: unit index per row)
    have a row of that class: the patients a bootstrap of that class's rows can draw from."""
    labels = np.asarray(labels)
    classes = np.unique(labels) if classes is None else classes
    return [len(np.unique(codes[labels == c])) for c in classes]


def format_plain(m, digits: int = 2) -> str:
    """A metric in its plain (JSON) form, ``{"value", "low", "high"[, "no_interval"]}``, as ``Interval.format``
    writes it: ``0.91 [0.84, 0.96]``, ``0.75 [n/a (too few patients: 1 per class, need 5)]``, or "n/a"."""
    if not m or m.get("value") is None:
        return "n/a"
    f = f"{{:.{digits}f}}"
    text = f.format(m["value"])
    if m.get("low") is not None and m.get("high") is not None:
        return f"{text} [{f.format(m['low'])}, {f.format(m['high'])}]"
    return text + (f" [n/a ({m['no_interval']})]" if m.get("no_interval") else " [n/a]")


def _safe_call(fn, *args) -> float:
    try:
        value = fn(*args)
    except (ValueError, ZeroDivisionError, FloatingPointError):
        # e.g. scikit-learn's AUROC raises on a resample with one class only: undefined, not fatal
        return math.nan
    return float(value) if value is not None else math.nan


def bootstrap_by_group(metric_fn: Callable, groups, *arrays, n_boot: int = 2000, level: float = 0.95,
                       seed=0, strata=None, vectorized: bool = False,
                       min_per_class: int = MIN_PATIENTS_PER_CLASS) -> Interval:
    """Percentile bootstrap of ``metric_fn`` resampling groups (patients) with replacement.

    ``metric_fn(*arrays) -> float`` is called on the rows of each resample (a patient drawn twice
    contributes its rows twice). With ``vectorized=True`` it is instead called once as
    ``metric_fn(weights, *arrays) -> (n_boot,)`` with ``weights[b, i]`` the multiplicity of row ``i`` in
    resample ``b``; that form is much faster for metrics built from weighted sums.
    A resample whose metric raises ``ValueError`` or returns NaN (e.g. AUROC with one class only) is
    dropped and counted: the result's ``n_boot_valid`` says how many remained.
    ``strata`` (one label per row, e.g. ``y_true``) resamples positive and negative patients separately.
    ``groups=None`` resamples rows. The estimate is the metric on the full data.
    Fewer than ``min_per_class`` groups in a stratum (in all, without strata) give no interval: NaN bounds
    and the reason in ``note`` (see ``MIN_PATIENTS_PER_CLASS``).
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    if not arrays:
        raise ValueError("give at least one array")
    n_rows = arrays[0].shape[0]
    if any(a.shape[0] != n_rows for a in arrays):
        raise ValueError("all arrays need the same number of rows")
    if groups is not None and len(groups) != n_rows:
        raise ValueError("groups needs one label per row")
    if n_rows == 0:
        raise ValueError("no rows to resample")
    _, codes = np.unique(np.asarray(groups if groups is not None else np.arange(n_rows)), return_inverse=True)
    codes = codes.ravel()
    method = "bootstrap-groups" if groups is not None else "bootstrap-rows"
    n_units = int(codes.max()) + 1 if codes.size else 0
    per_class = [n_units] if strata is None else units_per_class(codes, strata, None)
    note = too_few_units(per_class, "patients" if groups is not None else "rows", min_per_class)
    if note:
        estimate = (np.asarray(metric_fn(np.ones((1, n_rows)), *arrays), dtype=float).ravel()[0] if vectorized
                    else _safe_call(metric_fn, *arrays))
        return no_interval(estimate, method, n_units, note)
    codes, counts = resample_groups(groups if groups is not None else np.arange(n_rows), n_boot, seed, strata)
    if vectorized:
        estimate = float(np.asarray(metric_fn(np.ones((1, n_rows)), *arrays), dtype=float).ravel()[0])
        values = np.empty(n_boot)
        # chunks bound the memory of the (resamples x rows) weight matrix on large tables
        chunk = max(1, 2_000_000 // max(n_rows, 1))
        for start in range(0, n_boot, chunk):
            w = counts[start:start + chunk][:, codes].astype(float)
            values[start:start + chunk] = np.asarray(metric_fn(w, *arrays), dtype=float).ravel()
    else:
        estimate = _safe_call(metric_fn, *arrays)
        values = np.empty(n_boot)
        rows = np.arange(n_rows)
        # Undefined resamples are expected and counted in n_boot_valid; a warning from each of them
        # (scikit-learn warns and returns NaN for one-class AUROC) would only bury the real output.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(n_boot):
                idx = np.repeat(rows, counts[b, codes])
                values[b] = _safe_call(metric_fn, *(a[idx] for a in arrays))
    return percentile_interval(values, estimate, level, method, n_units)
