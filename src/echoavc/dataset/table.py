"""``echoavc dataset build``: manifest + valve boxes + exam labels (+ views) -> one validated table.

One row per ingested frame (``key`` = ``<source_sha256>:<frame_index>``) with its
pseudonymous patient, exam and series, its view, its role for the detector, its
valve box in the standard space, and its exam's label:

- ``role = valve``: a frame with one valve box (its view is ``psax_av``);
- ``role = background``: a frame of another view (no aortic valve in short axis); the
  detector's datasets carry it with an empty label file;
- ``role = unlabelled``: no box and no known view; kept in the table, used by no training set
  (it may show a valve nobody boxed, e.g. another frame of an annotated clip).

Views come from a views table (``--views``: the synthetic cohort's ``frames.csv`` or any CSV
with an image key and ``view``), else are inferred: a frame with a valve box is ``psax_av``,
any other frame is ``unknown``.

Every problem found becomes one :class:`~echoavc.annotations.boxes.Problem` line; errors stop
the build (nothing but ``problems.csv`` is written), warnings do not.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from echoavc.annotations import read_boxes
from echoavc.annotations.boxes import (
    TRANSFORM_COLUMNS, BoxFile, FrameIndex, Problem, ValveBox, frame_key, read_manifest,
)
from echoavc.files import atomic_write_text, csv_text
from echoavc.annotations.labels import ExamLabels, read_labels
from echoavc.errors import EchoAVCError
from echoavc.settings import DatasetSettings

TABLE_COLUMNS = [
    "key", "source_sha256", "frame_index", "image_path", "patient_id", "study_id", "series_id",
    "view", "view_source", "role", "x1", "y1", "x2", "y2", "box_origin", "calcified", "grade",
    "original_rows", "original_cols", *TRANSFORM_COLUMNS,
]
PROBLEM_COLUMNS = ["level", "where", "message"]
VALVE_VIEW = "psax_av"
KNOWN_VIEWS = ("psax_av", "psax_mid", "plax", "a4c", "a2c", "a3c", "a5c", "subcostal", "suprasternal", "unknown")
_VIEW_SYNONYMS = {"psax-av": "psax_av", "psaxav": "psax_av", "sax_av": "psax_av", "psax_ao": "psax_av",
                  "psax-mid": "psax_mid", "psax_pm": "psax_mid", "psax": "psax_mid", "4ch": "a4c",
                  "apical4": "a4c", "": "unknown", "nan": "unknown", "none": "unknown"}
TABLE_FILE, META_FILE, PROBLEMS_FILE = "table.csv", "table.json", "problems.csv"


def normalise_view(v) -> str:
    s = str(v).strip().lower().replace(" ", "_")
    return _VIEW_SYNONYMS.get(s, s)


@dataclass
class DatasetTable:
    """The joined table and what building it found."""

    frame: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    ingest_dir: Path | None = None
    meta: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(csv_text(TABLE_COLUMNS, _records(self.frame)).encode()).hexdigest()

    def image_file(self, image_path: str) -> Path:
        return (self.ingest_dir or Path(".")) / image_path

    def counts(self) -> dict:
        f = self.frame
        return {
            "frames": int(len(f)), "patients": int(f["patient_id"].nunique()), "exams": int(f["study_id"].nunique()),
            "roles": {k: int(v) for k, v in sorted(Counter(f["role"]).items())},
            "views": {k: int(v) for k, v in sorted(Counter(f["view"]).items())},
            "valve_frames_calcified": int(((f["role"] == "valve") & (f["calcified"] == 1)).sum()),
            "valve_frames_not_calcified": int(((f["role"] == "valve") & (f["calcified"] == 0)).sum()),
            "valve_frames_unlabelled": int(((f["role"] == "valve") & f["calcified"].isna()).sum()),
        }

    def save(self, out_dir: str | Path) -> Path:
        """Write ``table.csv``, ``table.json`` (provenance, counts, fingerprint) and ``problems.csv``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / PROBLEMS_FILE, csv_text(PROBLEM_COLUMNS, [asdict(p) for p in self.problems]))
        atomic_write_text(out / TABLE_FILE, csv_text(TABLE_COLUMNS, _records(self.frame)))
        ingest = self.ingest_dir.resolve() if self.ingest_dir else None
        try:
            ingest_ref = os.path.relpath(ingest, out.resolve()) if ingest else None
        except ValueError:  # another drive
            ingest_ref = str(ingest)
        meta = {**self.meta, "format": "echoavc-dataset-table/1", "ingest_dir": ingest_ref,
                "fingerprint": self.fingerprint, "counts": self.counts(),
                "problems": {"errors": len(self.errors), "warnings": len(self.warnings)}}
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=1) + "\n")
        return out / TABLE_FILE

    @classmethod
    def load(cls, path: str | Path) -> "DatasetTable":
        """Read a table folder (or its ``table.csv``) written by :meth:`save`."""
        path = Path(path)
        folder = path.parent if path.suffix == ".csv" else path
        table_csv = folder / TABLE_FILE
        if not table_csv.is_file():
            raise EchoAVCError(f"no {TABLE_FILE}: not a dataset table folder (run echoavc dataset build)", folder)
        frame = pd.read_csv(table_csv, dtype={"key": str, "source_sha256": str, "image_path": str,
                                              "patient_id": str, "study_id": str, "series_id": str, "view": str,
                                              "view_source": str, "role": str, "box_origin": str},
                            keep_default_na=False, na_values={c: [""] for c in ("x1", "y1", "x2", "y2", "calcified",
                                                                               "grade")})
        frame = _typed(frame)
        meta = {}
        if (folder / META_FILE).is_file():
            meta = json.loads((folder / META_FILE).read_text())
        ingest = meta.get("ingest_dir")
        ingest_dir = (folder / ingest).resolve() if ingest is not None else None
        return cls(frame, [], ingest_dir, meta)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for c in ("calcified", "grade"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("Int64")
    for c in ("x1", "y1", "x2", "y2", "scale", "pad_x", "pad_y"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    for c in ("frame_index", "original_rows", "original_cols", "crop_x", "crop_y", "crop_w", "crop_h", "std_size"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(int)
    for c in ("patient_id", "study_id", "series_id", "box_origin", "view", "view_source", "role"):
        frame[c] = frame[c].fillna("").astype(str)
    return frame


def _records(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for r in frame[TABLE_COLUMNS].to_dict("records"):
        out = {}
        for k, v in r.items():
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
                out[k] = ""
            elif k in ("x1", "y1", "x2", "y2"):
                out[k] = f"{float(v):.4f}"
            elif k in ("scale", "pad_x", "pad_y"):
                out[k] = repr(float(v))
            else:
                out[k] = v
        rows.append(out)
    return rows


# ---------------------------------------------------------------- views


def read_views(path: str | Path, frames: FrameIndex) -> tuple[dict[str, str], list[Problem]]:
    """A CSV with an image key (``source_sha256`` + ``frame_index``, ``key``, ``image`` or ``image_path``)
    and ``view``: the synthetic cohort's ``frames.csv`` works as it is."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python")
    except FileNotFoundError:
        raise EchoAVCError("no such views file", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EchoAVCError(f"cannot read views as CSV ({type(exc).__name__})", path) from None
    if "view" not in df.columns:
        raise EchoAVCError("no 'view' column", path)
    split = "source_sha256" in df.columns and "frame_index" in df.columns
    ref_col = next((c for c in ("key", "image", "image_path") if c in df.columns), None)
    if not split and ref_col is None:
        raise EchoAVCError("no image key: needs source_sha256 + frame_index, key, image or image_path", path)
    views, problems, missing = {}, [], 0
    for i, row in enumerate(df.to_dict("records")):
        try:
            key = frames.resolve(row.get(ref_col) if ref_col else None,
                                 row.get("source_sha256") if split else None, row.get("frame_index") if split else None)
        except KeyError:
            missing += 1  # a views table may list frames that were not ingested (every_nth, failures)
            continue
        v = normalise_view(row["view"])
        if key in views and views[key] != v:
            problems.append(Problem("error", key, f"the views file gives two views ({views[key]}, {v})"))
        views[key] = v
    if missing:
        problems.append(Problem("warning", str(path), f"{missing} row(s) name frames not in the manifest: ignored"))
    return views, problems


# ---------------------------------------------------------------- build


def build_table(manifest: pd.DataFrame, boxes: BoxFile | list[ValveBox] | None = None,
                labels: ExamLabels | None = None, views: dict[str, str] | None = None,
                settings: DatasetSettings | None = None, ingest_dir: str | Path | None = None,
                frames: FrameIndex | None = None) -> DatasetTable:
    """Join and validate (pure: reads image files only to check they exist, when ``ingest_dir`` is given)."""
    settings = settings or DatasetSettings()
    frames = frames or FrameIndex(manifest)
    problems: list[Problem] = []
    if isinstance(boxes, BoxFile):
        problems += boxes.problems
        box_list = boxes.boxes
    else:
        box_list = list(boxes or [])
    if labels is not None:
        problems += labels.problems
    views = dict(views or {})

    m = manifest.copy()
    m["key"] = [frame_key(s, i) for s, i in zip(m["source_sha256"], m["frame_index"])]
    dup = m["key"].duplicated(keep="first")
    for k in m.loc[dup, "key"]:
        problems.append(Problem("error", k, "frame listed twice in the manifest"))
    m = m.loc[~dup].reset_index(drop=True)

    # boxes -> standard space, one per frame
    per_frame: dict[str, list[ValveBox]] = {}
    invalid: set[str] = set()  # frames whose box was reported already: no second line about them
    tol = settings.box_tolerance_px
    for b in box_list:
        if b.key not in frames:
            problems.append(Problem("error", b.origin or b.key, f"box for frame {b.key}, which is not in the manifest"))
            continue
        info = frames[b.key]
        std = b.to_space("standard", info.transform)
        where = f"{b.key} ({b.origin})" if b.origin else b.key
        if not (std.x2 > std.x1 and std.y2 > std.y1):
            problems.append(Problem("error", where, f"empty box ({b.x1:g}, {b.y1:g}, {b.x2:g}, {b.y2:g}) in {b.space} space"))
            invalid.add(b.key)
            continue
        s = info.transform.size
        if std.x1 < -tol or std.y1 < -tol or std.x2 > s + tol or std.y2 > s + tol:
            ob = b.to_space("original", info.transform)
            W, H = info.original_size
            problems.append(Problem("error", where, f"box outside the image: ({std.x1:.1f}, {std.y1:.1f}, {std.x2:.1f}, "
                                    f"{std.y2:.1f}) in the {s}x{s} standard image, ({ob.x1:.1f}, {ob.y1:.1f}, "
                                    f"{ob.x2:.1f}, {ob.y2:.1f}) in the {W}x{H} original (wrong --space?)"))
            invalid.add(b.key)
            continue
        per_frame.setdefault(b.key, []).append(std)
    for k, bs in per_frame.items():
        if len(bs) > 1:
            problems.append(Problem("error", k, f"{len(bs)} valve boxes on one frame ("
                                    + "; ".join(b.origin or "?" for b in bs) + ")"))

    # labels per exam
    manifest_exams = dict(zip(m["study_id"], m["patient_id"]))
    exam_labels = labels.exams if labels is not None else {}
    if labels is not None:
        joined = [e for e in exam_labels if e in manifest_exams]
        if exam_labels and not joined:
            problems.append(Problem("error", "labels", "no exam in the labels file matches the manifest: wrong key, "
                                    "or the exam column is not the StudyInstanceUID (see --label-column exam=...)"))
        else:
            for e, rec in exam_labels.items():
                if e not in manifest_exams:
                    problems.append(Problem("warning", f"exam {rec['exam_original']}",
                                            "labelled but not in the manifest: ignored"))
                elif rec["patient_id"] and rec["patient_id"] != manifest_exams[e]:
                    problems.append(Problem("error", f"exam {rec['exam_original']}", "the labels file gives it another "
                                            "patient than its DICOM files do: labels contradict the images"))
                    rec["calcified"], rec["grade"] = None, None

    rows = []
    valve_series = {str(s) for s, k in zip(m["series_id"], m["key"]) if len(per_frame.get(k, [])) == 1}
    for r in m.to_dict("records"):
        key = r["key"]
        bs = per_frame.get(key, [])
        box = bs[0] if len(bs) == 1 else None
        if key in views:
            view, view_source = views[key], "given"
        elif box is not None:
            view, view_source = VALVE_VIEW, "inferred"
        else:
            view, view_source = "unknown", "none"
        if box is not None:
            role = "valve"
            if view != VALVE_VIEW:
                problems.append(Problem("error", key, f"a valve box on a {view} frame: a box belongs on {VALVE_VIEW}"))
        elif len(bs) > 1 or key in invalid:
            role = "unlabelled"
        elif view == VALVE_VIEW:
            role = "unlabelled"
            problems.append(Problem("error", key, f"{VALVE_VIEW} frame without a valve box ({r['image_path']})"))
        elif view != "unknown":
            role = "background"
        elif settings.unknown_view == "background" and str(r["series_id"]) not in valve_series:
            role = "background"
        else:
            role = "unlabelled"
        lab = exam_labels.get(r["study_id"], {}) if r["study_id"] in manifest_exams else {}
        rows.append({
            **{c: r[c] for c in ("key", "source_sha256", "frame_index", "image_path", "patient_id", "study_id",
                                 "series_id", "original_rows", "original_cols", *TRANSFORM_COLUMNS)},
            "view": view, "view_source": view_source, "role": role,
            "x1": box.x1 if box else np.nan, "y1": box.y1 if box else np.nan,
            "x2": box.x2 if box else np.nan, "y2": box.y2 if box else np.nan,
            "box_origin": box.origin if box else "",
            "calcified": lab.get("calcified"), "grade": lab.get("grade"),
        })
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    frame = _typed(frame) if len(frame) else frame

    # patients without a group id; patients grouped by a stand-in
    for k in frame.loc[frame["patient_id"].str.strip() == "", "key"] if len(frame) else []:
        problems.append(Problem("error", k, "frame has no patient id: it cannot be kept to one side of a split"))
    if "patient_id_source" in m.columns:
        stand_ins = m.loc[m["patient_id_source"].isin(["StudyInstanceUID", "file"]), ["patient_id", "patient_id_source"]]
        for pid, src in stand_ins.drop_duplicates("patient_id").itertuples(index=False):
            problems.append(Problem("warning", f"patient {pid}", f"no PatientID: grouped by {src}, so one person's "
                                    "exams may land in different parts"))
    # valve frames whose exam has no label
    if labels is not None and len(frame):
        nolab = frame[(frame["role"] == "valve") & frame["calcified"].isna()]
        for sid, n in nolab.groupby("study_id").size().items():
            problems.append(Problem("warning", f"exam {sid}", f"{n} valve frame(s) without an exam label: "
                                    "the detector can use them, the classifier cannot"))

    # images on disk
    if ingest_dir is not None and len(frame):
        root = Path(ingest_dir)
        missing = [k for k, p in zip(frame["key"], frame["image_path"]) if not (root / p).is_file()]
        if missing and len(missing) == len(frame):
            problems.append(Problem("error", str(root), f"none of the {len(frame)} images exist under this folder "
                                    "(wrong --ingest-dir?)"))
        else:
            paths = dict(zip(frame["key"], frame["image_path"]))
            for k in missing:
                problems.append(Problem("error", k, f"missing image {paths[k]}"))
    return DatasetTable(frame, problems, Path(ingest_dir) if ingest_dir is not None else None)


def build_dataset(manifest: str | Path, boxes: str | Path | None = None, fmt: str = "maxqda",
                  labels: str | Path | None = None, key: str | Path | None = None,
                  views: str | Path | None = None, settings: DatasetSettings | None = None,
                  ingest_dir: str | Path | None = None, out: str | Path | None = None) -> DatasetTable:
    """The whole build from files: what ``echoavc dataset build`` runs. Writes ``out`` when given
    (``problems.csv`` always; ``table.csv`` and ``table.json`` only without errors)."""
    settings = settings or DatasetSettings()
    manifest = Path(manifest)
    mdf = read_manifest(manifest)
    frames = FrameIndex(mdf, manifest)
    problems: list[Problem] = []
    box_file = None
    if boxes is not None:
        options = {"columns": settings.maxqda} if fmt == "maxqda" else {}
        box_file = read_boxes(boxes, fmt, frames, settings.space, **options)
    view_map = None
    if views is not None:
        view_map, vp = read_views(views, frames)
        problems += vp
    lab = None
    if labels is not None:
        secret = None
        if key is not None:
            from echoavc.dicom.deid import PseudonymKey

            if not Path(key).is_file():
                raise EchoAVCError("no such key file (use the key ingest used)", key)
            secret = PseudonymKey(key).secret
        lab = read_labels(labels, secret, settings.ids, settings.labels, set(mdf["study_id"]))
    table = build_table(mdf, box_file, lab, view_map, settings, ingest_dir or manifest.parent, frames)
    table.problems = problems + table.problems
    table.meta = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": {"manifest": str(manifest), "manifest_sha256": _sha(manifest), "boxes": str(boxes) if boxes else None,
                   "boxes_format": fmt if boxes else None, "space": settings.space,
                   "labels": str(labels) if labels else None, "labels_sha256": _sha(labels) if labels else None,
                   "views": str(views) if views else None},
        "settings": {"ids": settings.ids, "unknown_view": settings.unknown_view,
                     "box_tolerance_px": settings.box_tolerance_px},
    }
    if out is not None:
        out = Path(out)
        if table.errors:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / PROBLEMS_FILE, csv_text(PROBLEM_COLUMNS, [asdict(p) for p in table.problems]))
            for stale in (TABLE_FILE, META_FILE):  # never leave an older, valid-looking table beside the errors
                (out / stale).unlink(missing_ok=True)
        else:
            table.save(out)
    return table


def _sha(path) -> str | None:
    p = Path(path)
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()
    return None


def table_boxes(table: DatasetTable) -> list[ValveBox]:
    """The table's valve boxes (standard space)."""
    f = table.frame[table.frame["role"] == "valve"]
    return [ValveBox(k, x1, y1, x2, y2, "standard", origin="table")
            for k, x1, y1, x2, y2 in zip(f["key"], f["x1"], f["y1"], f["x2"], f["y2"])]


def table_frames(table: DatasetTable) -> FrameIndex:
    return FrameIndex(table.frame)


def export_boxes(table: DatasetTable, path: str | Path, fmt: str, space: str = "standard",
                 background: bool = True) -> int:
    """Write the table's valve boxes as ``fmt`` in ``space``; background frames too (empty YOLO files, COCO
    images without annotations) when ``background``. Returns the number of boxes."""
    from echoavc.annotations import get_format

    f = get_format(fmt)
    boxes = table_boxes(table)
    keys = None
    if background and fmt != "maxqda":
        keys = list(table.frame.loc[table.frame["role"].isin(["valve", "background"]), "key"])
    options = {"keys": keys} if keys is not None else {}
    f.write(boxes, path, table_frames(table), space, **options)
    return len(boxes)
