"""``echoavc evaluate``: the whole screening path of a bundle on labelled data, with honest metrics.

Two sources of data, one report (:func:`echoavc.evaluate.screening.evaluate_screening`):

- a part of a dataset (:func:`evaluate_dataset`): the table's standard frames of that part's patients, as
  ingested, screened clip by clip (detector boxes, not the annotated ones; the bundle's own thresholds);
- raw exams with an exam-level labels file (:func:`evaluate_exams`): ``echoavc predict`` on the files, joined
  to labels.csv by the Study Instance UID; a file the pipeline fails on is counted against its exam.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import pandas as pd

from echoavc.errors import EchoAVCError
from echoavc.evaluate.screening import ExamTruth, FrameTruth, evaluate_screening

__all__ = ["screen_table_part", "table_truth", "held_out_summary", "read_exam_labels", "evaluate_dataset",
           "evaluate_exams", "PART_LABELS"]

#: how each part of a split may be read: only a part no training choice used estimates skill
PART_LABELS = {
    "test": "test (held out: no training choice used it)",
    "val": "validation (used for model selection; optimistic)",
    "train": "training (the models learned from it; not an estimate of skill)",
}
# predict's exam ids: the unkeyed hash, or the keyed study pseudonym (with the ingest key)
PREDICT_EXAM_ID = re.compile(r"^(E[0-9a-f]{10}|E-[A-Z2-7]{12})$")


def screen_table_part(bundle, table, split, part: str = "test", backend: str = "torch", progress: bool = False,
                      settings=None) -> list:
    """Screen ``part``'s valve and other-view frames of a dataset table, clip by clip (ClipResults, with the
    table's study id as the exam id). ``split=None``: every frame of the table (a held-out cohort)."""
    from echoavc.bundle import Bundle, load_bundle
    from echoavc.detector.evaluate import part_frames
    from echoavc.files import progress_bar
    from echoavc.phase import decide_phase
    from echoavc.phase.image import read_valve_image
    from echoavc.phase.policy import PolicyGate
    from echoavc.screening import ClipResult, Screener
    from echoavc.views.screening import screen_with_view

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    screener = Screener(bundle, backend, settings)
    frames = part_frames(table, split, part)
    clips = []
    groups = list(frames.groupby("source_sha256", sort=True))
    with progress_bar(f"screening the {part} part", len(groups), enabled=progress) as advance:
        for sha, g in groups:
            g = g.sort_values("frame_index")
            images = []
            for p in g["image_path"]:
                img = cv2.imread(str(table.image_file(p)), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise EchoAVCError("cannot read frame image", table.image_file(p))
                images.append(img)
            exam = str(g["study_id"].iloc[0])
            # the clip's view first, when the bundle has a view model (as predict does: echoavc.views.screening)
            # the frame policy as predict applies it; a table holds standard frames only (no header, no ECG
            # outside the field), so the valve image decides here
            gate = PolicyGate(lambda boxes, images=images: decide_phase(
                len(images), image=None if boxes is None else (lambda: read_valve_image(images, boxes))),
                screener.settings.frames)
            res, view = screen_with_view(screener, images, [int(k) for k in g["frame_index"]], exam, str(sha), gate)
            phase = gate.apply(res)
            decided = [i for i, f in enumerate(res) if f.status == "decided"]
            best = max(decided, key=lambda i: res[i].probability) if decided else None
            clips.append(ClipResult(str(sha), str(sha), exam, res, best, phase=phase, view=view))
            advance()
    return clips


def _label(v) -> int | None:
    return None if v is None or v != v else int(v)


def table_truth(table) -> tuple[dict[str, ExamTruth], dict[tuple[str, int], FrameTruth]]:
    """Per exam (the table's study id) and per frame, the labels a dataset table holds; the vendor from the
    ingest manifest's manufacturer, when the manifest is there."""
    f = table.frame
    vendor: dict[str, str] = {}
    manifest = (table.ingest_dir / "manifest.csv") if table.ingest_dir else None
    if manifest is not None and manifest.is_file():
        m = pd.read_csv(manifest, dtype=str, keep_default_na=False, usecols=["source_sha256", "manufacturer"])
        vendor = dict(zip(m["source_sha256"], m["manufacturer"]))
    exams = {}
    for study, g in f.groupby("study_id"):
        v = g[(g["role"] == "valve") & g["calcified"].notna()]
        lab = g[g["calcified"].notna()]
        cal = v["calcified"].max() if len(v) else (lab["calcified"].max() if len(lab) else None)
        grade = g["grade"].dropna().max() if "grade" in g and g["grade"].notna().any() else None
        vend = next((vendor[s] for s in g["source_sha256"] if vendor.get(s)), "unknown")
        exams[str(study)] = ExamTruth(str(study), str(g["patient_id"].iloc[0]), _label(cal), _label(grade), vend)
    frames = {(str(s), int(i)): FrameTruth(str(r), _label(c))
              for s, i, r, c in zip(f["source_sha256"], f["frame_index"], f["role"], f["calcified"])}
    return exams, frames


def evaluate_dataset(model, data, part: str = "test", split=None, out=None, backend: str = "auto",
                     n_boot: int = 1000, progress: bool = False, settings=None) -> dict:
    """The whole screening path of bundle ``model`` on ``part`` of dataset ``data``'s split; writes the report
    into ``out`` when given. Returns the report (JSON-able, plus ``rows``: one per exam)."""
    from echoavc.bundle import Bundle, load_bundle
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable

    t0 = time.perf_counter()
    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    table = data if isinstance(data, DatasetTable) else DatasetTable.load(data)
    if split is None and not isinstance(data, DatasetTable):
        split = Path(data) / "split.json"
    if split is not None and not isinstance(split, Split):
        if not Path(split).is_file():
            raise EchoAVCError(f"no split file: run `echoavc dataset split --data {data}` first", split)
        split = Split.load(split)
    if part not in PART_LABELS:
        raise EchoAVCError(f"part must be one of {', '.join(PART_LABELS)}, not {part!r}")
    if split is not None and not split.parts().get(part):
        raise EchoAVCError(f"the split has no {part!r} patients (make a split with a {part} part)", split.path)
    clips = screen_table_part(bundle, table, split, part, bundle.backend(backend), progress, settings)
    exams, frames = table_truth(table)
    s = settings or bundle.screening
    report, rows = evaluate_screening(clips, exams, bundle.frame_threshold, bundle.exam_threshold,
                                      s.exam_aggregate, frame_truth=frames, n_boot=n_boot,
                                      grade_pooling=bundle.grade_pooling)
    trained = (bundle.meta.get("training") or {})
    same = None
    if trained.get("split_fingerprint") and split is not None:
        same = trained.get("split_fingerprint") == split.fingerprint
    report["data"] = {"source": "dataset", "dataset": str(data) if not isinstance(data, DatasetTable) else None, "part": part,
                      "label": PART_LABELS[part] if split is not None else "every frame of the table",
                      "split_of_training": same}
    if same is False:
        report["data"]["warning"] = ("the split differs from the one the bundle was trained on: its patients may "
                                     "include training patients")
    return _finish(report, rows, bundle, out, t0)


def _finish(report: dict, rows: list[dict], bundle, out, t0: float) -> dict:
    report["model"] = {"bundle": str(bundle.folder), "name": bundle.meta.get("name"),
                       "created": bundle.meta.get("created")}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["rows"] = rows
    if out is not None:
        from echoavc.evaluate.screening_report import write_evaluation

        write_evaluation(out, report)
    report.pop("_arrays", None)
    return report


def held_out_summary(report: dict, where: str) -> dict:
    """The headline of an evaluation for bundle.json: counts, coverage, exam metrics both ways, frame metrics."""
    keep = ("auroc", "recall", "specificity", "accuracy", "balanced_accuracy")

    def head(m):
        return {k: m[k] for k in keep if k in m} | {"n": m.get("n")} if m else None

    return {"label": report["data"]["label"], "counts": report["counts"],
            "coverage": (report.get("coverage") or {}).get("exams"), "thresholds": report["thresholds"],
            "exam_decided": head(report.get("exam_decided")),
            "exam_undetermined_as_errors": head(report.get("exam_undetermined_as_errors")),
            "clip": head(report.get("clip")), "frame": head(report.get("frame")), "report": where,
            **({"grade": {k: report["grade"].get(k) for k in ("qwk", "accuracy", "n", "exams_graded")}}
               if report.get("grade") else {})}


# ---------------------------------------------------------------- raw exams


def read_exam_labels(path, secret: bytes | None = None) -> dict[str, ExamTruth]:
    """labels.csv (as ``echoavc synth`` writes it: one row per exam) keyed by predict's exam id: the exam
    column holds the original Study Instance UID (named here the way predict names exams: keyed with the
    ingest key's ``secret`` when given) or predict's id."""
    from echoavc.annotations.labels import parse_calcified, parse_grade, pick_column, read_label_table
    from echoavc.screening import exam_id_of
    from echoavc.settings import LabelColumns

    path = Path(path)
    df = read_label_table(path)
    c = LabelColumns()
    exam_col = pick_column(df, c.exam, "exam", path)
    patient_col = pick_column(df, c.patient, "patient", path)
    cal_col = pick_column(df, c.calcified, "calcified", path, required=False)
    grade_col = pick_column(df, c.grade, "grade", path, required=False)
    vendor_col = pick_column(df, ("vendor", "manufacturer", "Manufacturer"), "vendor", path, required=False)
    if cal_col is None and grade_col is None:
        raise EchoAVCError("neither a calcified nor a grade column", path)
    out: dict[str, ExamTruth] = {}
    for i, row in enumerate(df.to_dict("records")):
        exam = str(row[exam_col]).strip()
        if not exam:
            raise EchoAVCError(f"row {i + 2}: no exam id", path)
        try:
            cal = parse_calcified(row[cal_col]) if cal_col else None
            grade = parse_grade(row[grade_col]) if grade_col else None
        except ValueError as exc:
            raise EchoAVCError(f"row {i + 2}: {exc}", path) from None
        if cal is None and grade is not None:
            cal = int(grade > 0)
        eid = exam if PREDICT_EXAM_ID.match(exam) else exam_id_of(exam, secret)
        out[eid] = ExamTruth(eid, str(row[patient_col]).strip() or eid, cal, grade,
                             (str(row[vendor_col]).strip() if vendor_col else "") or "unknown")
    return out


def _dicom_header(name: str) -> tuple[str | None, str | None]:
    """(Study Instance UID, Manufacturer) read from a file's header, (None, None) when even that fails."""
    import pydicom

    try:
        ds = pydicom.dcmread(name, stop_before_pixels=True, force=True,
                             specific_tags=["StudyInstanceUID", "Manufacturer"])
        study = str(ds.get("StudyInstanceUID", "") or "").strip() or None
        return study, str(ds.get("Manufacturer", "") or "").strip() or None
    except Exception:  # a header this broken cannot be attributed to an exam; it is counted as such
        return None, None


def evaluate_exams(model, exams, labels, out, backend: str = "auto", workers: int = 1, n_boot: int = 1000,
                   progress: bool = False, settings=None, overlays: str = "none", report: bool = False,
                   key=None) -> dict:
    """``echoavc predict`` on ``exams`` (files, folders, zips) into ``out/screening``, joined with ``labels``
    (labels.csv); every file counted, an exam whose files all failed or gave no decided frame undetermined.
    ``overlays``/``report``: predict's pictures and HTML report (off by default: the metrics need neither).
    ``key``: the ingest key: exam ids (and the labels joined to them) become its study pseudonyms."""
    from echoavc.bundle import load_bundle
    from echoavc.predict import open_key, predict
    from echoavc.screening import ClipResult, FrameResult, exam_id_of

    t0 = time.perf_counter()
    out = Path(out)
    secret = open_key(key, out)  # the whole report folder, not only out/screening, stays free of the key
    bundle = load_bundle(model)
    truth = read_exam_labels(labels, secret)
    exam_dirs = exams if isinstance(exams, (list, tuple)) else [exams]
    rep = predict(exam_dirs, bundle.folder, out / "screening", backend=backend, settings=settings,
                  workers=workers, overlays=overlays, report=report, progress=progress, key=key)
    clips = [ClipResult(r["source"], r["source"], r["exam_id"],
                        [FrameResult(**{k: v for k, v in f.items() if k != "status_text"}) for f in fr], None)
             for r, fr in _clips_of(rep.frames)]
    # vendors from the files' headers when labels.csv does not give them
    for c in clips:
        t = truth.get(c.exam_id)
        if t is not None and t.vendor == "unknown":
            _, vendor = _dicom_header(c.source)
            if vendor:
                truth[c.exam_id] = ExamTruth(t.exam_id, t.patient_id, t.calcified, t.grade, vendor)
    failed: dict[str, list[str]] = {}
    unattributed = []
    for f in rep.failures:
        study, _ = _dicom_header(f["source"]) if Path(f["source"]).is_file() else (None, None)
        if study is None:
            unattributed.append(f)
        else:
            failed.setdefault(exam_id_of(study, secret), []).append(f["source"])
    s = settings or bundle.screening
    seen = {c.exam_id for c in clips} | set(failed)
    # labels.csv defines the cohort: a labelled exam with no file (or only files that could not be tied to it)
    # is undetermined, never left out
    missing = sorted(set(truth) - seen)
    result, rows = evaluate_screening(clips, truth, bundle.frame_threshold, bundle.exam_threshold,
                                      s.exam_aggregate, failed=failed, missing=missing, n_boot=n_boot,
                                      grade_pooling=bundle.grade_pooling)
    result["data"] = {"source": "exams", "exams": [str(e) for e in exam_dirs], "labels": str(labels),
                      "label": "raw exams with exam-level labels",
                      "failed_files": rep.failures, "failed_files_without_exam": unattributed,
                      "labelled_exams_without_files": missing}
    result["screening"] = str(out / "screening")
    return _finish(result, rows, bundle, out, t0)


def _clips_of(frames: list[dict]):
    """predict's frame rows grouped back into clips (one per source), in order."""
    by: dict[str, list[dict]] = {}
    for f in frames:
        by.setdefault(f["source"], []).append(f)
    return [({"source": s, "exam_id": fr[0]["exam_id"]}, sorted(fr, key=lambda x: x["frame_index"]))
            for s, fr in sorted(by.items())]
