"""Fitting the grade head on a trained classifier's frozen pooled features (:mod:`echoavc.classifier.grade`).

Called by :func:`echoavc.classifier.train.train_classifier` after the binary model is saved; it reads the
network, never changes it. Training patients give the fit (their crops plus ``copies`` augmented passes with
the classifier's own jitter and rotation, because features of crops the network trained on are cleaner than
those it will see); the validation patients choose the L2 strength and the temperature. When the classifier
was cross-validated (validation part too small), a patient-grouped cross-validation of the head over the
train+val patients does both, and the head is fitted on all of them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from echoavc.classifier.grade import (GRADE_META, GRADE_ONNX, GRADE_STATE, NOT_TRAINED, GradeHead, class_probabilities,
                                      exam_grade, fit_exam_sharpness, fit_grade_temperature, fit_ordinal, median_grade,
                                      ordinal_nll, pooled_features)
from echoavc.errors import EchoAVCWarning
from echoavc.settings import GradeSettings

__all__ = ["fit_grade_head", "remove_grade"]


def remove_grade(folder: str | Path) -> None:
    """Delete grade files left in ``folder`` by an earlier training (a model without grades has none)."""
    for name in (GRADE_STATE, GRADE_META, GRADE_ONNX):
        (Path(folder) / name).unlink(missing_ok=True)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    return mu, np.where(sd > 1e-6, sd, 1.0)  # constant features (a ReLU never on) stay constant, not NaN


def _qwk(y, g) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if len(np.unique(np.r_[y, g])) < 2:
        return None
    return float(cohen_kappa_score(y, g, weights="quadratic"))


def _counts(grades) -> dict:
    v, c = np.unique(np.asarray(grades, dtype=int), return_counts=True)
    return {str(int(a)): int(b) for a, b in zip(v, c)}


def _exam_pooling(p_cal: np.ndarray, y_cal: np.ndarray, exam_ids: list) -> tuple[dict, dict]:
    """The exams' pooling of their frames (geometric, sharpness fitted on the calibration exams' log-loss) and
    its record; sharpness 1 when there are fewer than two calibration exams or grades."""
    exams = sorted(set(exam_ids))
    ids = np.asarray(exam_ids)
    rows = [np.flatnonzero(ids == e) for e in exams]
    truth = np.array([int(y_cal[r[0]]) for r in rows], dtype=int)
    enough = len(exams) >= 2 and len(np.unique(truth)) >= 2
    s = fit_exam_sharpness([p_cal[r] for r in rows], truth) if enough else 1.0
    pooling = {"kind": "geometric", "sharpness": s}
    pred = [exam_grade(p_cal[r], pooling)[0] for r in rows]
    return pooling, {"exams": len(exams), "fitted": bool(enough), "qwk_exams": _qwk(truth, np.array(pred)),
                     "label": "used for model selection; optimistic"}


def fit_grade_head(trained, source, train: list, val: list, out: str | Path, settings: GradeSettings | None = None,
                   log: Callable[[str], None] | None = None) -> GradeHead | None:
    """Fit, calibrate and save the grade head of ``trained`` (a :class:`~echoavc.classifier.train.Trained`) into
    ``out``; None (and no grade files in ``out``) when the training crops carry no grades."""
    gs = settings or GradeSettings()
    s = trained.settings
    out = Path(out)
    remove_grade(out)
    tr = [x for x in train if x.grade is not None]
    va = [x for x in val if x.grade is not None]
    if not tr:
        if log:
            log(NOT_TRAINED)
        return None
    if len({x.grade for x in tr}) < 2:
        warnings.warn("grade: not trained (the training crops hold one grade only)", EchoAVCWarning, stacklevel=2)
        return None
    k_classes = max(x.grade for x in tr + va) + 1
    model = trained.model
    rng = np.random.default_rng([s.seed, 17])
    online = s.rotation_deg if s.rotation == "online" else 0.0

    def feats(samples, copies: int = 0):
        x = [pooled_features(model, source.batch(samples), s.mean, s.std)]
        for _ in range(copies):  # the classifier's own training-time jitter and rotation
            x.append(pooled_features(model, source.batch(samples, s.crop.jitter, rng, online), s.mean, s.std))
        return np.concatenate(x), np.tile([x_.grade for x_ in samples], copies + 1)

    kind = (trained.meta.get("calibration_data") or {}).get("kind", "validation")
    use_val = (kind == "validation" and len(va) >= gs.min_val_crops and len({x.grade for x in va}) >= 2)
    scores: dict[str, float] = {}
    if use_val:
        x_tr, y_tr = feats(tr, gs.copies)
        x_va, y_va = feats(va)
        mu, sd = _standardise(x_tr)
        fits = {}
        for l2 in gs.l2:
            w, c = fit_ordinal((x_tr - mu) / sd, y_tr, k_classes, l2)
            fits[l2] = (w, c)
            scores[f"{l2:g}"] = ordinal_nll(((x_va - mu) / sd) @ w[:, None] - c[None, :], y_va)
        best = min(gs.l2, key=lambda v: scores[f"{v:g}"])
        w, c = fits[best]
        z_cal, y_cal = ((x_va - mu) / sd) @ w[:, None] - c[None, :], y_va
        exam_cal = [x.study_id for x in va]
        cal_data = {"kind": "validation", "crops": len(va), "patients": len({x.patient_id for x in va})}
    else:
        from echoavc.classifier.train import patient_folds

        pool = tr + va
        n_pat = len({x.patient_id for x in pool})
        folds = np.asarray(patient_folds(pool, max(2, min(s.cv_folds, n_pat)), s.seed))
        x_all, y_all = feats(pool, gs.copies)
        fold_all = np.tile(folds, gs.copies + 1)
        clean = np.arange(len(x_all)) < len(pool)  # out-of-fold logits are scored on the un-augmented crops
        oof = {}
        for l2 in gs.l2:
            z = np.full((len(pool), k_classes - 1), np.nan)
            for f in np.unique(folds):
                fit_rows = fold_all != f
                if len(np.unique(y_all[fit_rows])) < 2:
                    continue
                mu_f, sd_f = _standardise(x_all[fit_rows])
                w_f, c_f = fit_ordinal((x_all[fit_rows] - mu_f) / sd_f, y_all[fit_rows], k_classes, l2)
                z[folds == f] = ((x_all[clean][folds == f] - mu_f) / sd_f) @ w_f[:, None] - c_f[None, :]
            ok = np.isfinite(z).all(axis=1)
            oof[l2] = (z, ok)
            scores[f"{l2:g}"] = ordinal_nll(z[ok], y_all[clean][ok]) if ok.any() else float("inf")
        best = min(gs.l2, key=lambda v: scores[f"{v:g}"])
        z, ok = oof[best]
        z_cal, y_cal = z[ok], y_all[clean][ok]
        exam_cal = [x.study_id for x, keep in zip(pool, ok) if keep]
        mu, sd = _standardise(x_all)
        w, c = fit_ordinal((x_all - mu) / sd, y_all, k_classes, best)
        cal_data = {"kind": "out-of-fold", "crops": int(ok.sum()), "patients": n_pat,
                    "why": "the classifier was cross-validated" if kind != "validation"
                    else f"too few graded validation crops ({len(va)}; needs {gs.min_val_crops} and two grades)",
                    "note": "the network's features of these crops come from a model trained on them: optimistic"}
    temperature = fit_grade_temperature(z_cal, y_cal) if gs.calibration == "temperature" and len(z_cal) else 1.0
    p_cal = class_probabilities(z_cal / temperature)
    pooling, exam_fit = _exam_pooling(p_cal, y_cal, exam_cal)
    meta = {
        "model": {"kind": "cumulative-link (proportional odds) on the frozen classifier's pooled features",
                  "feature": "pooled", "n_features": int(len(w)), "l2": best, "l2_log_loss": scores,
                  "augmented_copies": gs.copies, "chosen_on": cal_data["kind"],
                  # the weight of the ordinal loss the network trained with (0: the binary loss alone)
                  "network_grade_loss": float(s.grade_loss) if (trained.meta.get("fit") or {}).get("grade_crops")
                  else 0.0},
        "calibration": gs.calibration, "calibration_data": cal_data,
        "exam_pooling": pooling, "exam_pooling_fit": exam_fit,
        "counts": {"train": _counts([x.grade for x in tr]),
                   "val": _counts([x.grade for x in va])},
        "validation": {"label": "used for model selection; optimistic",
                       "log_loss_raw": ordinal_nll(z_cal, y_cal), "log_loss": ordinal_nll(z_cal / temperature, y_cal),
                       "qwk_crops": _qwk(y_cal, median_grade(p_cal)),
                       "accuracy_crops": float((median_grade(p_cal) == y_cal).mean()) if len(y_cal) else None},
    }
    head = GradeHead(w, c, mu, sd, temperature, meta)
    head.save(out)
    if log:
        log(f"grade head: l2 {best:g}, T {temperature:.3f}, exam sharpness {pooling['sharpness']:.3f}, "
            f"{cal_data['kind']} QWK (crops) {meta['validation']['qwk_crops']}, (exams) {exam_fit['qwk_exams']}")
    return head
