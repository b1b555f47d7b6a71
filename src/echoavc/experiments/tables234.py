"""The paper's Tables 2-4, each row run under two protocols, beside the paper's reported numbers.

- ``paper``: the paper's protocol. Every labelled valve crop is augmented (rotated copies) and, where the
  row says so, the minority class duplicated; THEN the pool of images is split 80/20 at random by image
  (``dataset.split.paper_image_split``); fixed epochs, no validation, threshold 0.5. A patient's frames, and
  copies of one frame, land on both sides: leaky, and every output says so (the shared counts are columns).
- ``patient``: leakage-free. The shared patient split file first (train / val / test by patient); rotated
  copies and duplicates for the training part only; early stopping, calibration and the threshold on
  validation (or pooled out-of-fold predictions when validation is small); metrics on the test patients'
  original crops.

Table 2 is the binarisation baseline (no training), plus a fairer variant fitted on training images only.
Table 3 is four dataset variants x two backbones (pooling none); Table 4 six backbones x three poolings on
the balanced, augmented variant. The preset (smoke | cpu | paper) sets crop size, epochs, batch and learning
rate; the row sets backbone, pooling and the dataset variant.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from echoavc.dataset.split import Split, paper_image_split
from echoavc.dataset.table import DatasetTable
from echoavc.errors import EchoAVCError
from echoavc.evaluate import classification_report
from echoavc.evaluate.intervals import Interval
from echoavc.evaluate.tables import REPORTED_LABEL, ResultRow, to_markdown
from echoavc.settings import ClassifierSettings, CropSettings, classifier_preset

__all__ = ["TABLES", "Row", "table_rows", "run_table", "leakage", "PROTOCOLS", "LEAKY_LABEL", "CLEAN_LABEL"]

PROTOCOLS = ("paper", "patient")
LEAKY_LABEL = "paper: augment+balance, then 80/20 by image (LEAKY)"
CLEAN_LABEL = "patient: split by patient, then augment+balance train"
METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "auroc")
LEAK_METRICS = ("patients_shared", "frames_shared")

_NAMES = {"efficientnet_b0": "EfficientNetB0", "efficientnet_b4": "EfficientNetB4", "resnetv2_152": "ResNet152V2",
          "resnetv2_50": "ResNet50V2", "mobilenetv3_small_100": "MobileNetV3Small",
          "mobilenetv3_large_100": "MobileNetV3Large"}
_POOL = {"none": "None", "max": "Max", "avg": "Avg"}
_VARIANTS = {1: ("Original", False, False), 2: ("Balanced", False, True), 3: ("With data augmentation", True, False),
             4: ("Balanced w/ data augmentation", True, True)}


@dataclass(frozen=True)
class Row:
    """One experiment of a table: what to run and the paper's entry for it."""

    table: str
    experiment: int
    name: str
    reported: dict
    threshold: int | None = None  # table 2
    fair: bool = False  # table 2's fitted variant
    backbone: str | None = None
    pooling: str = "none"
    augment: bool = True
    balance: bool = True


def table_rows(table: str) -> list[Row]:
    """Every row of ``table`` (table2 | table3 | table4), in the paper's order."""
    rows: list[Row] = []
    if table == "table2":
        for e in _paper_rows("table2"):
            t = e["binarization_threshold"]
            rows.append(Row(table, e["experiment"], f"{e['experiment']}: binarise at {t}", e, threshold=t))
        rows.append(Row(table, 5, "5: fitted threshold + min white area (training images only)", {}, fair=True))
    elif table == "table3":
        for e in _paper_rows("table3"):
            label, aug, bal = _VARIANTS[e["experiment"]]
            bb = {v: k for k, v in _NAMES.items()}[e["model"]]
            rows.append(Row(table, e["experiment"], f"{e['experiment']}: {label} / {e['model']}", e, backbone=bb,
                            pooling="none", augment=aug, balance=bal))
    elif table == "table4":
        for e in _paper_rows("table4"):
            bb = {v: k for k, v in _NAMES.items()}[e["model"]]
            pool = {v: k for k, v in _POOL.items()}[e["pooling"]]
            rows.append(Row(table, e["experiment"], f"{e['experiment']}: {e['model']} / {e['pooling']}", e,
                            backbone=bb, pooling=pool))
    else:
        raise EchoAVCError(f"unknown table {table!r}: table2, table3 or table4")
    return rows


def _paper_rows(table: str) -> list[dict]:
    from echoavc.evaluate.tables import PAPER_REPORTED

    return [dict(r) for r in PAPER_REPORTED[table]["rows"]]


TABLES = ("table2", "table3", "table4")


# ---------------------------------------------------------------- leakage facts


def leakage(parts: dict[str, list]) -> dict:
    """Counts, from the samples actually used: patients with crops in several parts, source frames with crops
    (originals or copies) in several parts, and copies or duplicates outside the training part."""
    where_p: dict[str, set] = {}
    where_f: dict[str, set] = {}
    copies_outside = 0
    for part, samples in parts.items():
        for s in samples:
            where_p.setdefault(s.patient_id, set()).add(part)
            where_f.setdefault(s.key, set()).add(part)
            if part != "train" and s.variant != "original":
                copies_outside += 1
    return {"patients": len(where_p), "patients_shared": sum(len(v) > 1 for v in where_p.values()),
            "frames": len(where_f), "frames_shared": sum(len(v) > 1 for v in where_f.values()),
            "copies_outside_train": copies_outside,
            "crops": {p: len(v) for p, v in parts.items()}}


# ---------------------------------------------------------------- protocols


def _paper_parts(samples, augment: bool, balance: bool, deg: float, seed: int) -> tuple[dict, dict]:
    from echoavc.classifier.data import expand_training

    pool = expand_training(samples, (deg, -deg) if augment else (), "duplicate" if balance else "none",
                           np.random.default_rng(seed))
    assign = paper_image_split([{"patient_id": s.patient_id, "source_key": s.key, "variant": s.variant} for s in pool],
                               {"train": 0.8, "val": 0.0, "test": 0.2}, seed)
    parts = {"train": [], "test": []}
    for s, p in zip(pool, assign.parts):
        parts[p].append(replace(s, part=p))
    return parts, assign.report


def _metrics(y, score, threshold, groups, n_boot) -> dict:
    rep = classification_report(np.asarray(y), np.asarray(score, float), threshold, groups=np.asarray(groups),
                                n_boot=n_boot)
    return {k: rep["metrics"][k] for k in METRICS}


def _leak_metrics(leak: dict) -> dict:
    return {k: Interval(float(leak[k]), np.nan, np.nan, "count", leak["patients"]) for k in LEAK_METRICS}


@dataclass
class TableResult:
    table: str
    rows: list[ResultRow]
    reported: dict
    details: list[dict] = field(default_factory=list)
    markdown: str = ""
    files: dict = field(default_factory=dict)


def run_table(table: str, data: DatasetTable | str | Path, split: Split | str | Path | None = None,
              preset: str = "smoke", out: str | Path | None = None, rows: list[int] | None = None,
              protocols: tuple[str, ...] = PROTOCOLS, n_boot: int = 2000, seed: int = 0,
              log: Callable[[str], None] | None = None, **overrides) -> TableResult:
    """Run ``table``'s rows (``rows``: experiment numbers, default all) under ``protocols`` with ``preset``;
    write ``<table>.md``, ``<table>.csv`` and ``<table>_details.json`` into ``out``."""
    from echoavc import runtime
    from echoavc.classifier.data import load_samples
    from echoavc.classifier.train import set_threads

    runtime.configure()
    if not isinstance(data, DatasetTable):
        data = DatasetTable.load(data)
    if "patient" in protocols:
        if split is None:
            raise EchoAVCError("the patient protocol needs the split file (echoavc dataset split)")
        if not isinstance(split, Split):
            split = Split.load(split)
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        raise EchoAVCError(f"unknown protocol {bad[0]!r}: paper or patient")
    base = classifier_preset(preset, seed=seed, **overrides)
    set_threads(base)
    all_rows = table_rows(table)
    chosen = [r for r in all_rows if rows is None or r.experiment in rows]
    if not chosen:
        raise EchoAVCError(f"{table} has no experiment among {rows}")
    samples_all = load_samples(data, None)
    samples_split = load_samples(data, split) if "patient" in protocols else None
    if samples_split is not None and not any(s.part == "test" for s in samples_split):
        raise EchoAVCError("the split has no test part (no test patients with labelled valve crops) to score the "
                           "patient protocol on: make one with `echoavc dataset split --test 0.1` or run "
                           "--protocol paper", split.path)
    result_rows: list[ResultRow] = []
    details: list[dict] = []
    reported: dict = {}
    for row in chosen:
        reported[row.name] = row.reported
        for protocol in protocols:
            t0 = time.perf_counter()
            if log:
                log(f"{table} {row.name} [{protocol}]")
            metrics, info = _run_row(row, protocol, data, samples_all, samples_split, base, n_boot, seed, log)
            lk = info["leakage"]
            label = (LEAKY_LABEL if protocol == "paper" else CLEAN_LABEL) + (
                f"; shared: {lk['patients_shared']}/{lk['patients']} patients, {lk['frames_shared']} frames")
            result_rows.append(ResultRow(row.name, label, {**metrics, **_leak_metrics(info["leakage"])}))
            details.append({"table": table, "experiment": row.experiment, "name": row.name, "protocol": protocol,
                            "leaky": protocol == "paper", "seconds": round(time.perf_counter() - t0, 2), **info})
    res = TableResult(table, result_rows, reported, details)
    res.markdown = _markdown(table, preset, result_rows, reported, details)
    if out is not None:
        from echoavc.files import atomic_write_text
        from echoavc.evaluate.tables import write_csv

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{table}.md", res.markdown)
        write_csv(result_rows, out / f"{table}.csv", reported)
        atomic_write_text(out / f"{table}_details.json", json.dumps(details, indent=1, default=_js) + "\n")
        res.files = {"markdown": out / f"{table}.md", "csv": out / f"{table}.csv",
                     "details": out / f"{table}_details.json"}
    return res


def _js(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _markdown(table, preset, rows, reported, details) -> str:
    from echoavc.evaluate.tables import PAPER_REPORTED

    leaky = [d for d in details if d["leaky"]]
    head = [f"# {table[:-1].capitalize()} {table[-1]}: {PAPER_REPORTED[table]['title']}", "",
            f"Preset `{preset}`. Each experiment under two protocols; 95% intervals (patient bootstrap or "
            "Clopper-Pearson, whichever is wider, for proportions). \"shared\": patients and source frames with "
            "crops (originals, rotated copies, duplicates) in more than one part; the CSV has them as "
            "`patients_shared` / `frames_shared`.", ""]
    if leaky:
        worst = max(leaky, key=lambda d: d["leakage"]["patients_shared"])
        head += [f"**LEAKY rows** ({LEAKY_LABEL}): up to {worst['leakage']['patients_shared']} of "
                 f"{worst['leakage']['patients']} patients and {worst['leakage']['frames_shared']} frames have crops "
                 "(originals, rotated copies, duplicates) on both sides of the split; their metrics are optimistic.",
                 ""]
    head += [f"The last column is the paper's number ({REPORTED_LABEL}): context, not a target.", ""]
    return "\n".join(head) + to_markdown(rows, list(METRICS), reported=reported)


def _row_settings(row: Row, base: ClassifierSettings) -> ClassifierSettings:
    return replace(base, backbone=row.backbone or base.backbone, pooling=row.pooling,
                   rotation="copies" if row.augment else "none", balance="duplicate" if row.balance else "none")


def _run_row(row: Row, protocol: str, data, samples_all, samples_split, base: ClassifierSettings, n_boot: int,
             seed: int, log) -> tuple[dict, dict]:
    from echoavc.classifier.baseline import fit_fair_baseline, paper_call
    from echoavc.classifier.data import CropSource
    from echoavc.classifier.train import fit_model, predict_logits, train_and_calibrate, training_samples as _expand
    from echoavc.classifier.calibrate import sigmoid

    info: dict = {}
    if row.table == "table2":
        src = CropSource(data, CropSettings(size=224, margin=base.crop.margin), noise_reduction=False)
        if protocol == "paper":
            # the paper's 183: originals + rotated copies, no balancing; the rule needs no training
            parts, rep = _paper_parts(samples_all, True, False, base.rotation_deg, seed)
            if row.fair:
                fit_on, test = parts["train"], parts["test"]
            else:
                fit_on, test = [], parts["train"] + parts["test"]
                parts = {"test": test}
            info["leak_report"] = rep
        else:
            parts = {p: [s for s in samples_split if s.part == p] for p in ("train", "val", "test")}
            fit_on, test = parts["train"], parts["test"]
        crops = src.batch(test)
        if row.fair:
            fb = fit_fair_baseline(src.batch(fit_on), [s.label for s in fit_on])
            score, thr = fb.score(crops), fb.min_area / (224 * 224)
            info["fitted"] = fb.to_dict()
        else:
            score, thr = paper_call(crops, row.threshold).astype(float), 0.5
        info["leakage"] = leakage(parts)
        return _metrics([s.label for s in test], score, thr, [s.patient_id for s in test], n_boot), info

    s = _row_settings(row, base)
    src = CropSource(data, s.crop, s.noise_reduction, max_jitter=s.crop.jitter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if protocol == "paper":
            parts, rep = _paper_parts(samples_all, row.augment, row.balance, s.rotation_deg, seed)
            info["leak_report"] = rep
            model, fr = fit_model(src, parts["train"], [], s, seed, epochs=s.epochs, log=log)
            test = parts["test"]
            p = sigmoid(predict_logits(model, src.batch(test), s.mean, s.std))
            thr = 0.5
            info["fit"] = {"best_epoch": fr.best_epoch, "seconds": fr.seconds}
        else:
            train = [x for x in samples_split if x.part == "train"]
            val = [x for x in samples_split if x.part == "val"]
            test = [x for x in samples_split if x.part == "test"]
            trained = train_and_calibrate(src, train, val, s, log=log)
            p = trained.calibration(predict_logits(trained.model, src.batch(test), s.mean, s.std))
            thr = trained.threshold
            parts = {"train": _expand(train, s, s.seed), "val": val, "test": test}
            info["calibration"] = trained.calibration.to_dict()
            info["calibration_data"] = trained.meta["calibration_data"]
            info["cv"] = trained.meta["cv"]
        info["threshold"] = thr
        info["leakage"] = leakage(parts)
    if not test:
        raise EchoAVCError("no test crops: the split has no test patients with labelled valve frames")
    return _metrics([x.label for x in test], p, thr, [x.patient_id for x in test], n_boot), info
