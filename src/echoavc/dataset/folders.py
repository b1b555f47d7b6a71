"""``materialise``: a training-ready folder for one split, fold and augmentation set (the module is named
folders so that ``echoavc.dataset.materialise`` is always the function, never this module).

Writes (atomically: into a temporary sibling folder, renamed at the end)::

    out/
      data.yaml                 Ultralytics dataset file (path, train/val/test, names) + echoavc provenance keys
      images/<part>/<name>.png  valve frames and background frames (augmented variants in train only)
      labels/<part>/<name>.txt  YOLO boxes in the standard image; empty for background frames
      crops/<part>/<calcified|not_calcified>/<name>.png   valve crops for the classifier (224x224)
      crops.csv                 one row per crop: file, part, calcified, grade, patient, exam, variant, weight
      rejected.csv              augmented variants rejected because the valve left the image
      materialised.json         split fingerprint, fold, augmentation, balance, counts, leakage checks
      LEAKY.txt                 only for the paper's image-level protocol

Augmentation and balancing touch the training part only (``protocol="patient"``, the default).
``protocol="paper"`` reproduces the paper: every valve frame is augmented (and, with
``balance="duplicate"``, the minority class duplicated) BEFORE the images are split at random;
everything it writes says it is leaky.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from echoavc.annotations.boxes import VALVE_LABEL, ValveBox
from echoavc.annotations.yolo import yolo_line
from echoavc.dataset.augment import (
    ONLINE, OnlineAugmenter, apply_variant, augmentation_name, class_weights, duplicate_minority,
    parse_augmentation, variants,
)
from echoavc.dataset.split import PARTS, Split, paper_image_split
from echoavc.dataset.table import DatasetTable
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_folder, atomic_write_text, csv_text, progress_bar
from echoavc.preprocess.crop import valve_crop
from echoavc.settings import AugmentSettings, CropSettings

CROP_COLUMNS = ["file", "part", "calcified", "grade", "patient_id", "study_id", "key", "variant", "duplicate", "weight"]
REJECT_COLUMNS = ["key", "variant", "part", "reason"]
BALANCE = ("none", "duplicate", "weights")
PROTOCOLS = ("patient", "paper")


# ---------------------------------------------------------------- the plan


@dataclass
class Item:
    """One image to write: a table frame, or an augmented variant of one."""

    key: str
    part: str
    role: str
    image_path: str
    patient_id: str
    study_id: str
    calcified: int | None
    grade: int | None
    box: tuple | None
    variant: str = "original"

    @property
    def stem(self) -> str:
        s = Path(self.image_path).stem
        return s if self.variant == "original" else f"{s}__{self.variant}"


@dataclass
class MaterialiseReport:
    out: Path
    counts: dict
    rejected: list[dict] = field(default_factory=list)
    leaky: bool = False
    meta: dict = field(default_factory=dict)


def _items(table: DatasetTable, part_of) -> list[Item]:
    f = table.frame
    f = f[f["role"].isin(["valve", "background"])]
    out = []
    for r in f.to_dict("records"):
        box = (r["x1"], r["y1"], r["x2"], r["y2"]) if r["role"] == "valve" else None
        cal = None if pd.isna(r["calcified"]) else int(r["calcified"])
        grade = None if pd.isna(r["grade"]) else int(r["grade"])
        out.append(Item(r["key"], part_of(r["patient_id"]), r["role"], r["image_path"], r["patient_id"],
                        r["study_id"], cal, grade, box))
    return out


def _read(table: DatasetTable, image_path: str) -> np.ndarray:
    p = table.image_file(image_path)
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EchoAVCError("cannot read image", p)
    return img


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise EchoAVCError("cannot encode PNG", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())  # inside the temporary folder: the folder's rename is the atomic step


def materialise(table: DatasetTable | str | Path, split: Split | str | Path | None, out: str | Path,
                fold: int | None = None, parts: tuple[str, ...] = PARTS, augmentation: str | tuple = "original",
                balance: str = "none", protocol: str = "patient", crops: bool = True,
                crop_settings: CropSettings | None = None, augment_settings: AugmentSettings | None = None,
                seed: int = 0, paper_fractions: dict[str, float] | None = None, overwrite: bool = False,
                progress: bool = False) -> MaterialiseReport:
    """Write the training-ready folder ``out`` for ``fold`` (None: the main train/val/test split) and
    ``augmentation`` (a Table 1 experiment name/number, ``+``-joined techniques, or ``online``)."""
    if not isinstance(table, DatasetTable):
        table = DatasetTable.load(table)
    if protocol not in PROTOCOLS:
        raise EchoAVCError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if balance not in BALANCE:
        raise EchoAVCError(f"balance must be one of {', '.join(BALANCE)}, not {balance!r}")
    bad_parts = [p for p in parts if p not in PARTS]
    if bad_parts or not parts:
        raise EchoAVCError(f"parts must be among {', '.join(PARTS)}")
    techniques = parse_augmentation(augmentation) if isinstance(augmentation, (str, int)) or augmentation is None \
        else tuple(augmentation)
    aug_name = augmentation_name(techniques)
    cs = crop_settings or CropSettings()
    aset = augment_settings or AugmentSettings()
    rng = np.random.default_rng(seed)
    out = Path(out)
    if out.exists() and not overwrite:
        raise EchoAVCError("output folder exists (use --overwrite to replace it)", out)

    leaky = protocol == "paper"
    split_info: dict = {}
    rejected: list[dict] = []
    if not leaky:
        if split is None:
            raise EchoAVCError("the patient protocol needs a split file (echoavc dataset split)")
        if not isinstance(split, Split):
            split = Split.load(split)
        unknown = sorted(set(table.frame["patient_id"]) - set(split.patients))
        if unknown:
            raise EchoAVCError(f"{len(unknown)} patient(s) of the table are not in the split (e.g. {unknown[0]}): "
                               "the split was made from another table", split.path)
        split.parts(fold)  # checks the fold
        items = [it for it in _items(table, lambda p: split.part_of(p, fold)) if it.part in parts]
        split_info = {"split_file": str(split.path) if split.path else None, "split_fingerprint": split.fingerprint,
                      "table_fingerprint_in_split": split.table_fingerprint, "fold": fold, "k": split.k,
                      "seed": split.seed, "fractions": split.fractions}
        if split.table_fingerprint and split.table_fingerprint != table.fingerprint:
            split_info["warning"] = "the table changed since the split was made"
    else:
        if fold is not None:
            raise EchoAVCError("the paper's protocol has no folds: it is generated on the fly")
        if techniques == ONLINE:
            raise EchoAVCError("the paper's protocol uses offline augmentation, not online")
        items = [it for it in _items(table, lambda p: "") if it.role == "valve"]

    # augmented variants: train only (patient protocol); every valve frame before the split (paper)
    written: list[tuple[Item, np.ndarray | None]] = []  # (item, image or None to copy the file)
    for it in items:
        written.append((it, None))
        if techniques and techniques != ONLINE and it.role == "valve" and (leaky or it.part == "train"):
            img = _read(table, it.image_path)
            for v in variants(techniques, aset):
                a = apply_variant(img, it.box, v, aset)
                if not a.ok:
                    rejected.append({"key": it.key, "variant": a.name, "part": it.part or "(before split)",
                                     "reason": a.reason})
                    continue
                vi = Item(it.key, it.part, it.role, it.image_path, it.patient_id, it.study_id, it.calcified,
                          it.grade, a.box, a.name)
                written.append((vi, a.image))

    leak_report = None
    if leaky:
        pool = [it for it, _ in written]
        dup_extra: list[int] = []
        if balance == "duplicate":  # the paper balanced the pooled images before splitting
            lab = [i for i, it in enumerate(pool) if it.calcified is not None]
            extra = duplicate_minority([pool[i].calcified for i in lab], rng)
            dup_extra = [lab[i] for i in extra]
            for n, i in enumerate(dup_extra):
                src_it, src_img = written[i]
                d = Item(**{**asdict(src_it), "variant": f"{src_it.variant}__dup{n}"})
                written.append((d, src_img))
        fr = paper_fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
        assign = paper_image_split([{"patient_id": it.patient_id, "source_key": it.key, "variant": it.variant}
                                    for it, _ in written], fr, seed)
        for (it, _), part in zip(written, assign.parts):
            it.part = part
        leak_report = assign.report
        written = [(it, img) for it, img in written if it.part in parts]

    # write into a temporary sibling folder, renamed at the end
    with atomic_folder(out) as tmp:
        with progress_bar("materialise", len(written), progress) as advance:
            crop_rows = _write_all(table, written, tmp, crops, cs, rng, advance)
        if crops and balance != "none" and not leaky:
            crop_rows = _balance_crops(crop_rows, balance, tmp, rng)
        elif crops and leaky:
            crop_rows = [{**r, "weight": 1.0} for r in crop_rows]
        counts = _counts(written, crop_rows)
        checks = _checks(written, crop_rows)
        present = [p for p in PARTS if p in parts]
        meta = {
            "format": "echoavc-materialised/1", "protocol": protocol, "leaky": leaky,
            "augmentation": aug_name, "techniques": list(techniques) if techniques != ONLINE else ONLINE,
            "augment_settings": asdict(aset), "balance": balance, "seed": seed, "parts": present,
            "crops": asdict(cs) if crops else None, "table_fingerprint": table.fingerprint, **split_info,
            "counts": counts, "rejected": len(rejected), "checks": checks,
        }
        if techniques == ONLINE:
            meta["online"] = {"note": "no offline variants written: augment on the fly (OnlineAugmenter for "
                                      "crops; these Ultralytics arguments for the detector)",
                              "ultralytics_args": OnlineAugmenter.ultralytics_args(aset)}
        if leak_report:
            meta["leakage"] = leak_report
            atomic_write_text(tmp / "LEAKY.txt", leak_report["warning"] + "\n\n" + json.dumps(leak_report, indent=1)
                              + "\n")
        atomic_write_text(tmp / "data.yaml", _data_yaml(out.resolve(), present, meta))
        atomic_write_text(tmp / "rejected.csv", csv_text(REJECT_COLUMNS, rejected))
        if crops:
            atomic_write_text(tmp / "crops.csv", csv_text(CROP_COLUMNS, crop_rows))
        atomic_write_text(tmp / "materialised.json", json.dumps(meta, indent=1, default=str) + "\n")
    return MaterialiseReport(out, counts, rejected, leaky, meta)


def _write_all(table: DatasetTable, written, root: Path, crops: bool, cs: CropSettings,
               rng: np.random.Generator, advance: Callable[[], None]) -> list[dict]:
    rows = []
    sizes = dict(zip(table.frame["key"], table.frame["std_size"]))
    for it, img in written:
        advance()
        stem = it.stem
        dst = root / "images" / it.part / f"{stem}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if img is None:
            src = table.image_file(it.image_path)
            if not src.is_file():
                raise EchoAVCError("missing image (rebuild the table)", src)
            shutil.copyfile(src, dst)
        else:
            _write_png(dst, img)
        lbl = root / "labels" / it.part / f"{stem}.txt"
        lbl.parent.mkdir(parents=True, exist_ok=True)
        if it.box is not None:
            h, w = img.shape[:2] if img is not None else (int(sizes[it.key]),) * 2
            lbl.write_text(yolo_line(ValveBox(it.key, *it.box), w, h) + "\n")
        else:
            lbl.write_text("")
        if crops and it.box is not None and it.calcified is not None:
            if img is None:
                img = _read(table, it.image_path)
            jitter = cs.jitter if it.part == "train" else 0.0
            crop = valve_crop(img, it.box, cs.size, cs.margin, jitter, rng if jitter else None)
            cls = "calcified" if it.calcified else "not_calcified"
            rel = Path("crops") / it.part / cls / f"{stem}.png"
            _write_png(root / rel, crop)
            rows.append({"file": rel.as_posix(), "part": it.part, "calcified": it.calcified,
                         "grade": "" if it.grade is None else it.grade, "patient_id": it.patient_id,
                         "study_id": it.study_id, "key": it.key, "variant": it.variant, "duplicate": 0,
                         "weight": 1.0})
    return rows


def _balance_crops(rows: list[dict], balance: str, root: Path, rng: np.random.Generator) -> list[dict]:
    train = [i for i, r in enumerate(rows) if r["part"] == "train"]
    labels = [int(rows[i]["calcified"]) for i in train]
    if balance == "weights":
        w = class_weights(labels)
        return [{**r, "weight": round(w[int(r["calcified"])], 6) if r["part"] == "train" else 1.0} for r in rows]
    out = list(rows)
    for n, j in enumerate(duplicate_minority(labels, rng)):
        r = rows[train[j]]
        src = Path(r["file"])
        rel = src.with_name(f"{src.stem}__dup{n}.png")
        shutil.copyfile(root / src, root / rel)
        out.append({**r, "file": rel.as_posix(), "duplicate": 1})
    return out


def _counts(written, crop_rows) -> dict:
    c: dict = {}
    for it, _ in written:
        d = c.setdefault(it.part, {"images": 0, "valve": 0, "background": 0, "augmented": 0, "patients": set()})
        d["images"] += 1
        d[it.role] += 1
        d["augmented"] += it.variant != "original"
        d["patients"].add(it.patient_id)
    for d in c.values():
        d["patients"] = len(d["patients"])
    for r in crop_rows:
        d = c.setdefault(r["part"], {})
        key = "crops_calcified" if int(r["calcified"]) else "crops_not_calcified"
        d[key] = d.get(key, 0) + 1
    return c


def _checks(written, crop_rows) -> dict:
    """Facts about what was written (the tests check them against the files too)."""
    parts_of: dict[str, set[str]] = {}
    for it, _ in written:
        parts_of.setdefault(it.patient_id, set()).add(it.part)
    return {
        "patients_in_several_parts": sum(len(s) > 1 for s in parts_of.values()),
        "augmented_outside_train": sum(1 for it, _ in written if it.variant != "original" and it.part != "train"),
        "duplicated_crops_outside_train": sum(1 for r in crop_rows if r["duplicate"] and r["part"] != "train"),
        "weighted_crops_outside_train": sum(1 for r in crop_rows if r["part"] != "train" and float(r["weight"]) != 1.0),
    }


def _data_yaml(path: Path, parts: list[str], meta: dict) -> str:
    q = json.dumps  # JSON strings are valid YAML scalars
    lines = ["# echoavc materialised dataset: see materialised.json for the full provenance"]
    if meta["leaky"]:
        lines.append("# LEAKY: the paper's image-level protocol; patients and augmented copies cross the split")
    lines.append(f"path: {q(str(path))}")
    for p in parts:
        lines.append(f"{p}: {q('images/' + p)}")
    lines += ["nc: 1", "names:", f"  0: {VALVE_LABEL}",
              f"echoavc_protocol: {meta['protocol']}", f"echoavc_leaky: {str(meta['leaky']).lower()}",
              f"echoavc_augmentation: {q(meta['augmentation'])}", f"echoavc_balance: {meta['balance']}",
              f"echoavc_split: {q(meta.get('split_fingerprint') or '')}",
              f"echoavc_fold: {meta.get('fold') if meta.get('fold') is not None else 'null'}",
              f"echoavc_table: {q(meta['table_fingerprint'])}"]
    return "\n".join(lines) + "\n"
