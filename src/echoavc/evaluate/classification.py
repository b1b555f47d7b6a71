"""Metrics for the calcified / not calcified call, each with a confidence interval.

Every metric is written as a function of row weights (``w[b, i]`` = how many times row ``i`` is in
bootstrap resample ``b``), so one matrix product evaluates all resamples at once and the point estimate
is the same code with weights of one. A prediction is positive when ``p_score >= threshold``.
"""

from __future__ import annotations

import math

import numpy as np

from echoavc.evaluate.intervals import (
    MIN_PATIENTS_PER_CLASS,
    Interval,
    no_interval,
    percentile_interval,
    proportion_intervals,
    resample_groups,
    too_few_units,
    units_per_class,
)

__all__ = [
    "METRICS",
    "PROPORTIONS",
    "classification_report",
    "choose_threshold",
    "fewest_for_share",
    "youden",
    "weighted_auroc",
    "weighted_average_precision",
]

#: Metric names in report order.
METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "balanced_accuracy",
           "auroc", "auprc", "brier")
#: Metrics that are a count over a count, so exact and score intervals apply.
PROPORTIONS = ("accuracy", "precision", "recall", "specificity")


def _as_binary(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError("y_true must be one-dimensional")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 (or False/True) labels only")
    return y.astype(bool)


def _as_scores(p_score, n: int, probabilities: bool = True) -> np.ndarray:
    p = np.asarray(p_score, dtype=float)
    if p.shape != (n,):
        raise ValueError(f"p_score must have shape ({n},), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("p_score holds NaN or infinite values")
    if probabilities and ((p < 0).any() or (p > 1).any()):
        raise ValueError("p_score must be probabilities in [0, 1]")
    return p


def _weights(w, n: int) -> tuple[np.ndarray, bool]:
    w = np.asarray(w, dtype=float)
    single = w.ndim == 1
    w = np.atleast_2d(w)
    if w.shape[1] != n:
        raise ValueError("weights need one column per row")
    return w, single


def _div(num, den) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _level_sums(w_sorted: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per resample, the weight sum of each run of tied scores (``ends`` = last index of each run)."""
    cum = np.cumsum(w_sorted, axis=1)[:, ends]
    return np.diff(cum, axis=1, prepend=0.0)


def weighted_auroc(w, y_true, score) -> np.ndarray | float:
    """Area under the ROC curve with row weights (ties count one half), the Mann-Whitney form.

    ``w`` is ``(n,)`` (returns a float) or ``(B, n)`` (returns ``(B,)``); NaN where a class has no weight.
    Equals ``sklearn.metrics.roc_auc_score(y, score, sample_weight=w)``.
    """
    y = _as_binary(y_true)
    s = np.asarray(score, dtype=float)
    w, single = _weights(w, y.size)
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    pos = _level_sums(w[:, order] * y[order], ends)
    neg = _level_sums(w[:, order] * ~y[order], ends)
    neg_through = np.cumsum(neg, axis=1)
    # each positive beats every negative below its score and ties with half of those at its score
    num = (pos * (neg_through - 0.5 * neg)).sum(axis=1)
    out = _div(num, pos.sum(axis=1) * neg.sum(axis=1))
    return float(out[0]) if single else out


def weighted_average_precision(w, y_true, score) -> np.ndarray | float:
    """Average precision, sum over score thresholds of (recall step) x precision, with row weights.

    Equals ``sklearn.metrics.average_precision_score(y, score, sample_weight=w)``; NaN without positives.
    """
    y = _as_binary(y_true)
    s = np.asarray(score, dtype=float)
    w, single = _weights(w, y.size)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(w[:, order] * y[order], axis=1)[:, ends]
    fp = np.cumsum(w[:, order] * ~y[order], axis=1)[:, ends]
    n_pos = tp[:, -1:]
    precision = _div(tp, tp + fp)
    d_recall = _div(np.diff(tp, axis=1, prepend=0.0), n_pos)
    # a threshold that adds no positive adds nothing, even where its precision is undefined
    out = np.where(d_recall > 0, d_recall * np.nan_to_num(precision), 0.0).sum(axis=1)
    out[n_pos[:, 0] <= 0] = np.nan
    return float(out[0]) if single else out


def _counts(w: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "tp": w @ (y & pred).astype(float),
        "fp": w @ (~y & pred).astype(float),
        "fn": w @ (y & ~pred).astype(float),
        "tn": w @ (~y & ~pred).astype(float),
    }


def _metric_values(w: np.ndarray, y: np.ndarray, p: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of ``w``; NaN where a metric is undefined (e.g. no positives)."""
    c = _counts(w, y, pred)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    total = tp + fp + fn + tn
    recall = _div(tp, tp + fn)
    specificity = _div(tn, tn + fp)
    return {
        "accuracy": _div(tp + tn, total),
        "precision": _div(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (recall + specificity) / 2,
        "auroc": np.atleast_1d(weighted_auroc(w, y, p)),
        "auprc": np.atleast_1d(weighted_average_precision(w, y, p)),
        "brier": _div(w @ (p - y) ** 2, total),
    }


def _proportion_counts(tp, fp, fn, tn) -> dict[str, tuple[int, int]]:
    return {
        "accuracy": (tp + tn, tp + fp + fn + tn),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "specificity": (tn, tn + fp),
    }


def classification_report(y_true, p_score, threshold: float, groups=None, grades=None, vendors=None,
                          n_boot: int = 2000, seed=0, level: float = 0.95, stratify: bool = True,
                          min_per_class: int = MIN_PATIENTS_PER_CLASS) -> dict:
    """Threshold and ranking metrics of a binary classifier, each with intervals.

    Metrics: accuracy, precision, recall (sensitivity), specificity, F1, balanced accuracy, AUROC,
    AUPRC (average precision), Brier score, and the confusion matrix ``[[tn, fp], [fn, tp]]``
    (scikit-learn's layout). ``threshold`` must come from validation data (see ``choose_threshold``).

    Intervals (``report["intervals"][name]``, a dict by method): proportions get "wilson" and
    "clopper-pearson"; every metric gets "bootstrap": over ``groups`` (patients) when given, else over
    rows. ``stratify`` resamples positive and negative patients separately (a patient is positive if
    any of its rows is), so no resample lacks a class. ``"primary"`` is the interval to report:
    for proportions the wider of the patient bootstrap and Clopper-Pearson (exact when no groups),
    for the rest the bootstrap; ``report["metrics"][name]`` is that primary interval.
    A bootstrap interval collapses to a point when every resample gives the same value (recall 1.0,
    AUROC 1.0): that is not certainty, which is why proportions fall back on the exact interval.
    With fewer than ``min_per_class`` patients (rows without groups) in a class, or in a grade or vendor
    subset, the bootstrap gives no interval (NaN bounds, the reason in ``Interval.note``): proportions then
    report Clopper-Pearson, the other metrics the estimate alone.

    ``grades`` (severity per row) gives ``report["recall_by_grade"]``, over grades that have positives;
    ``vendors`` gives ``report["by_vendor"][vendor]["recall" | "specificity"]``; both with intervals.
    """
    y = _as_binary(y_true)
    n = y.size
    if n == 0:
        raise ValueError("no rows to evaluate")
    p = _as_scores(p_score, n)
    pred = p >= threshold
    grouped = groups is not None
    if grouped and len(groups) != n:
        raise ValueError("groups needs one label per row")
    group_labels = np.asarray(groups) if grouped else np.arange(n)
    codes, counts = resample_groups(group_labels, n_boot, seed, y.astype(int) if stratify else None)
    boot_method = "bootstrap-groups" if grouped else "bootstrap-rows"

    subsets: dict[tuple, np.ndarray] = {}
    if grades is not None:
        grades = np.asarray(grades)
        if grades.shape != (n,):
            raise ValueError("grades needs one value per row")
        for g in _ordered_unique(grades[y]):
            subsets[("grade", g, "recall")] = y & (grades == g)
    if vendors is not None:
        vendors = np.asarray(vendors)
        if vendors.shape != (n,):
            raise ValueError("vendors needs one value per row")
        for v in _ordered_unique(vendors):
            subsets[("vendor", v, "recall")] = y & (vendors == v)
            subsets[("vendor", v, "specificity")] = ~y & (vendors == v)

    def subset_values(w: np.ndarray) -> dict[tuple, np.ndarray]:
        # recall of a subset of positives = flagged / all; specificity of negatives = unflagged / all
        out = {}
        for key, mask in subsets.items():
            hit = pred if key[2] == "recall" else ~pred
            out[key] = _div(w @ (mask & hit).astype(float), w @ mask.astype(float))
        return out

    ones = np.ones((1, n))
    point = {k: float(v[0]) for k, v in _metric_values(ones, y, p, pred).items()}
    point_sub = {k: float(v[0]) for k, v in subset_values(ones).items()}
    boot = {k: np.empty(n_boot) for k in METRICS}
    boot_sub = {k: np.empty(n_boot) for k in subsets}
    chunk = max(1, 2_000_000 // n)  # bounds the (resamples x rows) weight matrix
    for start in range(0, n_boot, chunk):
        w = counts[start:start + chunk][:, codes].astype(float)
        for k, v in _metric_values(w, y, p, pred).items():
            boot[k][start:start + chunk] = v
        for k, v in subset_values(w).items():
            boot_sub[k][start:start + chunk] = v
    n_units = counts.shape[1]
    unit = "patients" if grouped else "rows"
    # recall rests on the patients with calcified rows, specificity on those with normal rows, the rest on both
    per_class = units_per_class(codes, y.astype(int))
    classes = {"recall": (per_class[1:], f"calcified {unit}"), "specificity": (per_class[:1], f"normal {unit}")}
    c = {k: int(round(float(v[0]))) for k, v in _counts(ones, y, pred).items()}
    props = _proportion_counts(c["tp"], c["fp"], c["fn"], c["tn"])
    intervals: dict[str, dict[str, Interval]] = {}
    for name in METRICS:
        note = too_few_units(*classes.get(name, (per_class, unit)), minimum=min_per_class)
        b = (no_interval(point[name], boot_method, n_units, note) if note else
             percentile_interval(boot[name], point[name], level, boot_method, n_units))
        if name in props:
            intervals[name] = proportion_intervals(*props[name], level, b)
        else:
            intervals[name] = {"bootstrap": b, "primary": b}

    recall_by_grade: dict = {}
    by_vendor: dict = {}
    for key, mask in subsets.items():
        kind, value, metric = key
        hit = pred if metric == "recall" else ~pred
        k_, n_ = int((mask & hit).sum()), int(mask.sum())
        in_subset = len(np.unique(codes[mask]))
        note = too_few_units([in_subset], unit, min_per_class)
        b = (no_interval(point_sub[key], boot_method, in_subset, note) if note else
             percentile_interval(boot_sub[key], point_sub[key], level, boot_method, in_subset))
        entry = proportion_intervals(k_, n_, level, b)
        if kind == "grade":
            recall_by_grade[value] = entry
        else:
            by_vendor.setdefault(value, {})[metric] = entry

    return {
        "n": n,
        "n_positive": int(y.sum()),
        "n_negative": int((~y).sum()),
        "n_groups": n_units if grouped else None,
        "threshold": float(threshold),
        "level": level,
        "n_boot": n_boot,
        "confusion_matrix": np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]]),
        "metrics": {name: intervals[name]["primary"] for name in METRICS},
        "intervals": intervals,
        "recall_by_grade": recall_by_grade,
        "by_vendor": by_vendor,
    }


def _ordered_unique(values: np.ndarray) -> list:
    """Unique values as plain Python objects, sorted where they can be."""
    uniq = list(dict.fromkeys(v.item() if hasattr(v, "item") else v for v in values))
    try:
        return sorted(uniq)
    except TypeError:
        return uniq


def fewest_for_share(share: float, n: int) -> int:
    """Fewest cases out of ``n`` whose proportion is at least ``share``; the tolerance keeps
    0.7 * 10 = 7.000000000000001 from demanding an eighth case."""
    return math.ceil(share * n - 1e-9)


def choose_threshold(y_true, p_score, min_recall: float = 0.95) -> float:
    """The highest threshold whose recall (``p_score >= t``) is at least ``min_recall``.

    Run this on validation data and apply the threshold to the test set unchanged: a threshold tuned
    on the test set makes the test recall look as good as asked for, whatever the model.
    The answer is always one of the positives' scores.
    """
    y = _as_binary(y_true)
    p = _as_scores(p_score, y.size, probabilities=False)
    if not 0.0 < min_recall <= 1.0:
        raise ValueError("min_recall must be in (0, 1]")
    pos = np.sort(p[y])[::-1]
    if pos.size == 0:
        raise ValueError("no positives: recall is undefined")
    # the k-th highest positive score is the highest threshold letting k positives through
    k = fewest_for_share(min_recall, pos.size)
    return float(pos[max(k, 1) - 1])


def youden(y_true, p_score, call_none: bool = False) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity - 1 (ties: the highest threshold).

    ``call_none``: also weigh calling nothing positive (J = 0, returned as ``inf``), as scikit-learn's
    ``roc_curve`` does; it wins when no score does better than chance. Like ``choose_threshold``, fit it on
    validation data only.
    """
    y = _as_binary(y_true)
    p = _as_scores(p_score, y.size, probabilities=False)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Youden's J needs both classes")
    order = np.argsort(-p, kind="stable")
    s = p[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(y[order])[ends]
    fp = np.cumsum(~y[order])[ends]
    j = tp / n_pos - fp / n_neg
    # candidates run from the highest score down, so argmax's first maximum is the highest threshold
    k = int(np.argmax(j))
    if call_none and not j[k] > 0:
        return math.inf
    return float(s[ends][k])
