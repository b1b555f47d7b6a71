"""Training: plain PyTorch, seeded, every core; early stopping on validation; the best epoch kept;
probabilities calibrated and the threshold chosen on validation, or on pooled out-of-fold predictions
of a patient-grouped cross-validation when the validation part is too small to trust.

``train_classifier(table, split, out, settings)`` reads the shared split file (patient level), augments
and balances the training part only, and writes::

    out/model.safetensors          the network's state dict (never a pickle)
    out/classifier.json            settings, crop and normalisation, calibration, threshold, provenance, history
    out/reliability_validation.png calibration of the validation (or out-of-fold) probabilities
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from echoavc import runtime
from echoavc.classifier.calibrate import Calibration, fit_calibration, pick_threshold
from echoavc.classifier.data import CropSource, Sample, expand_training, load_samples
from echoavc.classifier.model import AVCNet, OrdinalAux, build
from echoavc.classifier.predict import ENSEMBLE_FORMAT, META_FILE, MODEL_FILE, MODEL_FORMAT, average_per_box
from echoavc.dataset.split import Split
from echoavc.dataset.table import DatasetTable
from echoavc.errors import EchoAVCError, EchoAVCWarning
from echoavc.preprocess.crop import normalise
from echoavc.settings import ClassifierSettings

__all__ = ["FitResult", "Trained", "box_logits", "calibrated", "finish_training", "fit_model", "predict_logits",
           "train_and_calibrate", "train_classifier", "save_model", "MODEL_FILE", "META_FILE", "MODEL_FORMAT",
           "set_threads", "training_samples"]

def set_threads(settings: ClassifierSettings) -> int:
    """torch threads: ``settings.threads`` or every available core (Ultralytics may have lowered it)."""
    n = runtime.all_cores() if not settings.threads else settings.threads
    torch.set_num_threads(n)
    return n


@dataclass
class FitResult:
    best_epoch: int  #: 1-based; the epoch whose weights were kept
    history: list[dict]
    seconds: float
    stopped_early: bool = False
    #: training crops with a grade the auxiliary ordinal loss used (0: the binary loss alone)
    grade_crops: int = 0


@dataclass
class Trained:
    """A trained, calibrated classifier in memory."""

    model: AVCNet
    settings: ClassifierSettings
    calibration: Calibration
    threshold: float
    meta: dict = field(default_factory=dict)
    #: the logits and labels calibration and threshold were fitted on (validation or out-of-fold)
    cal_logits: np.ndarray | None = None
    cal_labels: np.ndarray | None = None
    #: the grade head fitted after training (echoavc.classifier.grade.GradeHead), None without grades
    grade: object | None = None


def predict_logits(model: nn.Module, crops: np.ndarray, mean, std, batch: int = 64) -> np.ndarray:
    """Logits for prepared crops (N, S, S) uint8, in eval mode."""
    was = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(model(torch.from_numpy(normalise(crops[i:i + batch], mean, std))).float().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def box_logits(model: nn.Module, source: CropSource, samples: list[Sample], s: ClassifierSettings) -> np.ndarray:
    """One logit per sample as the model will predict: the mean over the crop's test boxes
    (``s.crop.test_boxes``). Calibration and the threshold are fitted on these; choosing the epoch reads the box
    alone (``fit_model``), which is cheaper and orders epochs alike."""
    return average_per_box(predict_logits(model, source.test_batch(samples), s.mean, s.std), s.crop.test_boxes)


def _bce(logits: np.ndarray, y: np.ndarray) -> float:
    z = np.asarray(logits, float)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _auroc(y: np.ndarray, z: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return math.nan
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, z))


def fit_model(source: CropSource, train: list[Sample], val: list[Sample], s: ClassifierSettings, seed: int = 0,
              epochs: int | None = None, log: Callable[[str], None] | None = None,
              label: str = "") -> tuple[AVCNet, FitResult]:
    """Build a fresh network (seeded) and train it on ``train`` (already expanded: copies, duplicates);
    early stopping on ``val`` loss (``s.patience``), keeping the best epoch's weights. Without ``val``,
    trains ``epochs`` (default ``s.epochs``) and keeps the last."""
    if not train:
        raise EchoAVCError("no training crops")
    labels = np.array([t.label for t in train])
    if len(np.unique(labels)) < 2:
        raise EchoAVCError("the training part needs calcified and non-calcified crops")
    torch.manual_seed(seed)
    model = build(s.backbone, s.pooling, input_size=s.crop.size, hidden=s.hidden, dropout=s.dropout,
                  pretrained=s.pretrained)
    n_epochs = int(epochs or s.epochs)
    grades = np.array([-1 if t.grade is None else int(t.grade) for t in train])
    # the auxiliary ordinal loss only where it can teach something: a weight and two grades or more
    aux = OrdinalAux(model.n_features) if s.grade_loss > 0 and len(np.unique(grades[grades >= 0])) >= 2 else None
    params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_epochs))
    loss_fn = nn.BCEWithLogitsLoss()
    if s.balance == "weights":
        w = np.where(labels == 1, len(labels) / (2 * labels.sum()), len(labels) / (2 * (1 - labels).sum()))
        p_draw = w / w.sum()
    else:
        p_draw = None
    online_deg = s.rotation_deg if s.rotation == "online" else 0.0
    val_crops = source.batch(val) if val else None
    y_val = np.array([v.label for v in val]) if val else None
    if s.monitor not in ("loss", "auroc"):
        raise EchoAVCError(f"monitor must be loss or auroc, not {s.monitor!r}")
    best_score, best_state, best_epoch, bad = None, None, 0, 0
    history: list[dict] = []
    t0 = time.perf_counter()
    stopped = False
    model.train()
    for epoch in range(1, n_epochs + 1):
        te = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        order = rng.choice(len(train), len(train), p=p_draw) if p_draw is not None else rng.permutation(len(train))
        losses, grade_losses = [], []
        for i in range(0, len(order), s.batch):
            idx = order[i:i + s.batch]
            if len(idx) == 1 and s.batch > 1:
                continue  # a lone last sample: batch norm needs more than one
            batch = [train[j] for j in idx]
            crops = source.batch(batch, s.crop.jitter, rng, online_deg)
            x = torch.from_numpy(normalise(crops, s.mean, s.std))
            y = torch.tensor([b.label for b in batch], dtype=torch.float32)
            opt.zero_grad(set_to_none=True)
            if aux is None:
                loss = loss_fn(model(x), y)
            else:
                logits, pooled = model.logits_and_pooled(x)
                g_loss = aux.loss(pooled, torch.from_numpy(grades[idx]))
                loss = loss_fn(logits, y) + s.grade_loss * g_loss
                grade_losses.append(float(g_loss.detach()))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        rec = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan}
        if grade_losses:
            rec["train_grade_loss"] = float(np.mean(grade_losses))
        if val:
            z = predict_logits(model, val_crops, s.mean, s.std)
            rec["val_loss"], rec["val_auroc"] = _bce(z, y_val), _auroc(y_val, z)
            if s.monitor == "auroc" and np.isfinite(rec["val_auroc"]):
                score = (-rec["val_auroc"], rec["val_loss"])  # lower is better
            else:
                score = (rec["val_loss"], 0.0)
            if best_score is None or score[0] < best_score[0] - 1e-4 or (
                    abs(score[0] - best_score[0]) <= 1e-4 and score[1] < best_score[1]):
                best_score, best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
        else:
            best_epoch = epoch
        rec["seconds"] = round(time.perf_counter() - te, 3)
        history.append(rec)
        if log:
            extra = f" val_loss {rec['val_loss']:.4f} val_auroc {rec['val_auroc']:.3f}" if val else ""
            if "train_grade_loss" in rec:
                extra = f" (grade {rec['train_grade_loss']:.4f})" + extra
            log(f"{label}epoch {epoch}/{n_epochs} train_loss {rec['train_loss']:.4f}{extra} ({rec['seconds']:.1f} s)")
        if val and s.patience and bad >= s.patience:
            stopped = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, FitResult(best_epoch, history, round(time.perf_counter() - t0, 3), stopped,
                            int((grades >= 0).sum()) if aux is not None else 0)


def training_samples(samples: list[Sample], s: ClassifierSettings, seed: int) -> list[Sample]:
    """The training samples as fitted: with the settings' rotated copies and duplicate balancing."""
    copies = (s.rotation_deg, -s.rotation_deg) if s.rotation == "copies" else ()
    return expand_training(samples, copies, "duplicate" if s.balance == "duplicate" else "none",
                           np.random.default_rng(seed))


def _use_cv(s: ClassifierSettings, val: list[Sample]) -> tuple[bool, str]:
    if s.cross_validate == "always":
        return True, "asked for"
    if s.cross_validate == "never":
        return False, "asked not to"
    if s.cross_validate != "auto":
        raise EchoAVCError(f"cross_validate must be auto, always or never, not {s.cross_validate!r}")
    n_pat = len({v.patient_id for v in val})
    n_pos = sum(v.label for v in val)
    if n_pat < s.cv_min_val_patients or n_pos < s.cv_min_val_positives or n_pos == len(val):
        return True, (f"validation part too small ({n_pat} patients, {n_pos} calcified crops of {len(val)}; "
                      f"needs {s.cv_min_val_patients} patients and {s.cv_min_val_positives} calcified crops)")
    return False, f"validation part: {n_pat} patients, {n_pos} calcified crops of {len(val)}"


def patient_folds(samples: list[Sample], k: int, seed: int) -> list[int]:
    """Fold per sample: patients dealt into ``k`` folds stratified by label (a patient with any calcified crop is
    positive), all of a patient's crops in one fold."""
    pos = sorted({s.patient_id for s in samples if s.label})
    neg = sorted({s.patient_id for s in samples} - set(pos))
    rng = np.random.default_rng(seed)
    fold_of = {}
    start = 0
    for group in (pos, neg):
        for i, p in enumerate(np.array(group)[rng.permutation(len(group))] if group else []):
            fold_of[str(p)] = (start + i) % k
        start = (start + len(group)) % k
    return [fold_of[s.patient_id] for s in samples]


def train_and_calibrate(source: CropSource, train: list[Sample], val: list[Sample], s: ClassifierSettings,
                        log: Callable[[str], None] | None = None, folds: list[int] | None = None) -> Trained:
    """Train on ``train`` (the function augments and balances it), stop early and calibrate on ``val``; or, when
    ``val`` is too small (``s.cross_validate``), cross-validate over train+val patients, calibrate and choose the
    threshold on the pooled out-of-fold logits, and train the final model on train+val for the median best
    epoch count. ``folds`` (one per train+val sample) overrides the folds drawn here."""
    use_cv, why = _use_cv(s, val)
    meta: dict = {"calibration_data": None, "cv": None}
    if not use_cv:
        nets, fits = [], []
        for k in range(s.members):  # member 0 is exactly the single network of members=1
            seed = s.seed + k
            label = f"[member {k + 1}/{s.members}] " if s.members > 1 else ""
            net, fr = fit_model(source, training_samples(train, s, seed), val, s, seed, log=log, label=label)
            nets.append(net)
            fits.append(fr)
        from echoavc.classifier.ensemble import as_model

        meta["fit"] = asdict(fits[0])
        if s.members > 1:
            meta["member_fits"] = [{"seed": s.seed + k, **asdict(f)} for k, f in enumerate(fits)]
        return calibrated(as_model(nets), source, train, val, s, meta, why)
    if s.members > 1:
        raise EchoAVCError(f"members > 1 needs a validation part to calibrate on; this split would be "
                           f"cross-validated ({why})")
    pool = list(train) + list(val)
    k = s.cv_folds
    n_pat = len({p.patient_id for p in pool})
    if folds is None:
        k = max(2, min(k, n_pat))
        folds = patient_folds(pool, k, s.seed)
    else:
        k = len(set(folds))
    folds = np.asarray(folds)
    z = np.full(len(pool), np.nan)
    fold_info = []
    for f in sorted(set(folds.tolist())):
        tr = [p for p, g in zip(pool, folds) if g != f]
        va = [p for p, g in zip(pool, folds) if g == f]
        if len({t.label for t in tr}) < 2:
            raise EchoAVCError(f"cross-validation fold {f}: its training patients hold one class only")
        m, fr = fit_model(source, training_samples(tr, s, s.seed + 1 + f), va, s, s.seed + 1 + f, log=log,
                          label=f"[fold {f}] ")
        z[folds == f] = box_logits(m, source, va, s)
        fold_info.append({"fold": f, "crops": len(va), "patients": len({v.patient_id for v in va}),
                          "best_epoch": fr.best_epoch, "epochs_run": len(fr.history), "seconds": fr.seconds})
        del m
    epochs = max(1, int(round(float(np.median([fi["best_epoch"] for fi in fold_info])))))
    model, fr = fit_model(source, training_samples(pool, s, s.seed), [], s, s.seed, epochs=epochs, log=log,
                          label="[final] ")
    y = np.array([p.label for p in pool])
    meta["cv"] = {"why": why, "k": k, "folds": fold_info, "final_epochs": epochs,
                  "note": "calibration and threshold from pooled out-of-fold logits; final model trained on "
                          "train+val for the median best epoch"}
    meta["calibration_data"] = {"kind": "out-of-fold", "crops": len(pool), "patients": n_pat,
                                "positives": int(y.sum())}
    meta["fit"] = asdict(fr)
    return _calibrate(model, z, y, s, train, meta)


def calibrated(model: nn.Module, source: CropSource, train: list[Sample], val: list[Sample], s: ClassifierSettings,
               meta: dict, why: str = "") -> Trained:
    """``model`` (one network or an ensemble) calibrated and thresholded on ``val``'s box logits."""
    z = box_logits(model, source, val, s)
    y = np.array([v.label for v in val])
    meta["calibration_data"] = {"kind": "validation", "why": why, "crops": len(val),
                                "patients": len({v.patient_id for v in val}), "positives": int(y.sum())}
    return _calibrate(model, z, y, s, train, meta)


def _calibrate(model: nn.Module, z: np.ndarray, y: np.ndarray, s: ClassifierSettings, train: list[Sample],
               meta: dict) -> Trained:
    """Calibration and threshold fitted on logits ``z`` with labels ``y`` (validation or out-of-fold)."""
    try:
        cal = fit_calibration(z, y, s.calibration)
    except EchoAVCError as exc:
        warnings.warn(f"no calibration ({exc.reason}); probabilities are sigmoid(logit)", EchoAVCWarning,
                      stacklevel=2)
        cal = Calibration("none")
    p = cal(z)
    try:
        t = pick_threshold(y, p, s.threshold_rule, s.min_recall, s.fixed_threshold)
    except ValueError as exc:
        warnings.warn(f"threshold rule {s.threshold_rule!r} impossible ({exc}); using {s.fixed_threshold}",
                      EchoAVCWarning, stacklevel=2)
        t = s.fixed_threshold
    meta["calibration_fit"] = {"auroc": _auroc(y, z), "log_loss_raw": _bce(z, y),
                               "brier": float(np.mean((p - y) ** 2))}
    meta["weights_source"] = getattr(model, "weights_source", "")
    meta["starting_weights"] = getattr(model, "starting_weights", None)
    meta["train_counts"] = _counts(training_samples(train, s, s.seed))
    return Trained(model, s, cal, float(t), meta, z, y)


def _counts(samples: list[Sample]) -> dict:
    return {"crops": len(samples), "calcified": int(sum(x.label for x in samples)),
            "patients": len({x.patient_id for x in samples}),
            "copies": sum(1 for x in samples if x.variant != "original")}


def save_model(trained: Trained, out: str | Path, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` and ``classifier.json`` into ``out`` (atomic per file)."""
    from safetensors.torch import save_file

    from echoavc.files import atomic_write_text, atomic_write_with

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = trained.settings
    m = trained.model
    state = {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()}
    atomic_write_with(out / MODEL_FILE, lambda tmp: save_file(state, str(tmp)))
    import timm

    import echoavc

    doc = {
        "format": MODEL_FORMAT if s.members == 1 else ENSEMBLE_FORMAT,
        "backbone": s.backbone, "pooling": s.pooling, "hidden": s.hidden, "dropout": s.dropout,
        "input_size": s.crop.size, "feature_shape": list(m.feature_shape), "members": s.members,
        "crop": asdict(s.crop), "noise_reduction": s.noise_reduction,
        "normalisation": {"input": "grey crop, uint8", "scale": "x / 255", "channels": "grey copied to 3",
                          "mean": list(s.mean), "std": list(s.std)},
        "calibration": trained.calibration.to_dict(),
        "threshold": trained.threshold,
        "threshold_rule": {"rule": s.threshold_rule, "min_recall": s.min_recall, "fixed": s.fixed_threshold},
        "settings": asdict(s),
        "versions": {"echoavc": getattr(echoavc, "__version__", ""), "torch": torch.__version__,
                     "timm": timm.__version__},
        **trained.meta, **(extra or {}),
    }
    atomic_write_text(out / META_FILE, json.dumps(doc, indent=1, default=_json_default) + "\n")
    return out


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def train_classifier(table: DatasetTable | str | Path, split: Split | str | Path, out: str | Path,
                     settings: ClassifierSettings | None = None, fold: int | None = None,
                     log: Callable[[str], None] | None = None, grade=None) -> Trained:
    """Train, calibrate and save a classifier on the patient split (``fold``: None = main train/val parts).
    The test part is not touched. When the labels carry grades, the grade head (``grade``: GradeSettings) is
    fitted on the trained network's frozen features and saved beside it (``trained.grade``)."""
    s = settings or ClassifierSettings()
    runtime.configure()
    threads = set_threads(s)
    if not isinstance(table, DatasetTable):
        table = DatasetTable.load(table)
    if not isinstance(split, Split):
        split = Split.load(split)
    samples = load_samples(table, split, fold)
    train = [x for x in samples if x.part == "train"]
    val = [x for x in samples if x.part == "val"]
    source = CropSource(table, s.crop, s.noise_reduction, max_jitter=s.crop.jitter)
    t0 = time.perf_counter()
    trained = train_and_calibrate(source, train, val, s, log=log)
    return finish_training(trained, source, samples, table, split, out, threads, time.perf_counter() - t0, fold,
                           log, grade)


def finish_training(trained: Trained, source: CropSource, samples: list[Sample], table: DatasetTable, split: Split,
                    out: str | Path, threads: int, seconds: float, fold: int | None = None,
                    log: Callable[[str], None] | None = None, grade=None) -> Trained:
    """Save a calibrated classifier with its provenance and reliability diagram, then fit its grade head."""
    s = trained.settings
    provenance = {
        "protocol": "patient", "leaky": False, "fold": fold,
        "split_file": str(split.path) if split.path else None, "split_fingerprint": split.fingerprint,
        "table_fingerprint": table.fingerprint, "threads": threads, "train_seconds": round(seconds, 2),
        "parts": {p: _counts([x for x in samples if x.part == p]) for p in ("train", "val", "test")},
    }
    trained.meta["data"] = provenance
    save_model(trained, out)
    if trained.cal_labels is not None and len(np.unique(trained.cal_labels)) == 2:
        from echoavc.evaluate import reliability_diagram

        reliability_diagram(trained.cal_labels, trained.calibration(trained.cal_logits),
                            Path(out) / "reliability_validation.png",
                            title=f"{trained.meta['calibration_data']['kind']} ({s.calibration})")
    # the severity grade, on the saved network's frozen features (the binary model above is not changed)
    from echoavc.classifier.grade_fit import fit_grade_head

    train = [x for x in samples if x.part == "train"]
    val = [x for x in samples if x.part == "val"]
    trained.grade = fit_grade_head(trained, source, train, val, out, grade, log=log)
    return trained
