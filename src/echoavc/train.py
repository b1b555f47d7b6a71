"""``echoavc train``: both stages on the shared patient split, validated end to end, saved as one bundle.

1. the detector on the training patients (Ultralytics; its own validation on the validation patients);
2. the classifier on the training patients, calibrated and thresholded on the validation patients;
3. the whole screening path (detector boxes, not the annotated ones) on every validation frame, which gives
   the exam threshold (same rule as the frame threshold, on exam aggregates) and the validation report,
   labelled "validation (used for model selection; optimistic)";
4. when the split has a test part: ``echoavc evaluate`` of the finished models and thresholds on it, once,
   after every choice is made (:func:`echoavc.evaluate.heldout.evaluate_dataset`): the bundle's test report;
5. :func:`echoavc.bundle.save_bundle`.

Every choice (epochs, calibration, thresholds) is made on the validation part; the test part is only
screened at the end, and nothing is chosen from it. Finished stages are kept in the work folder, so a re-run
after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np

from echoavc.bundle import VALIDATION_LABEL, Bundle, load_bundle, save_bundle
from echoavc.errors import EchoAVCError
from echoavc.runner import StateStore
from echoavc.settings import (
    ClassifierSettings,
    DetectorSettings,
    IngestSettings,
    ScreeningSettings,
    ViewSettings,
    classifier_preset,
    detector_preset,
)

#: a finished stage's record in its work folder (``done.json``), through the batch runner's state store
DONE = "done"


def stage_done(folder: Path, fingerprint: dict) -> dict | None:
    """The record of a training stage finished in ``folder`` from exactly ``fingerprint`` (what it was trained
    from and with), or None: then the stage runs again. ``echoavc train`` and the demo resume through it."""
    rec = StateStore(folder).load(DONE)
    # compared in its JSON form: tuples in the settings come back as lists, and a stage must still be found done
    same = rec is not None and rec.get("fingerprint") == json.loads(json.dumps(fingerprint, default=str))
    return rec if same else None


def mark_stage_done(folder: Path, fingerprint: dict, result: dict) -> None:
    """Record a training stage finished in ``folder`` (after its outputs are written), with its result."""
    StateStore(folder).save(DONE, {"fingerprint": fingerprint, **result}, indent=1)


def _ingest_settings_of(table) -> IngestSettings:
    """The ingest settings the table's frames were made with (recorded by ``ingest``; else the defaults at the
    table's standard size)."""
    from echoavc.ingest import read_settings

    got = read_settings(table.ingest_dir) if table.ingest_dir else None
    if got is not None:
        return got
    size = int(table.frame["std_size"].iloc[0]) if "std_size" in table.frame.columns and len(table.frame) else 640
    return replace(IngestSettings(), size=size)


def validation_screening(bundle, table, split, part: str = "val", backend: str = "torch",
                         progress: bool = False) -> list:
    """Run the screening path over ``part``'s valve and other-view frames, clip by clip (ClipResults, with the
    table's study id as the exam id): :func:`echoavc.evaluate.heldout.screen_table_part`."""
    from echoavc.evaluate.heldout import screen_table_part

    return screen_table_part(bundle, table, split, part, backend, progress)


def validation_report(clips, table, frame_threshold: float, exam_threshold: float, aggregate: str) -> dict:
    """Frame- and exam-level metrics with intervals on the validation part, through the whole path."""
    from echoavc.evaluate import classification_report
    from echoavc.evaluate.intervals import proportion_interval
    from echoavc.screening import exam_results
    from echoavc.screening.core import REJECTED_AS_OTHER_VIEW, judged_as_view

    t = table.frame.set_index(["source_sha256", "frame_index"])
    rows = []
    for c in clips:
        for f in c.frames:
            r = t.loc[(c.sha256, f.frame_index)]
            rows.append((f, str(r["role"]), r["calcified"], str(r["patient_id"]), r.get("grade", np.nan)))
    valve = [x for x in rows if x[1] == "valve"]
    other = [x for x in rows if x[1] != "valve" and judged_as_view(x[0].status, x[0].valve_score)]

    def prop(k, n):
        iv = proportion_interval(k, n, "wilson") if n else None
        return {"value": (k / n) if n else None, "low": _num(iv.lo) if iv else None,
                "high": _num(iv.hi) if iv else None, "count": f"{k}/{n}"}

    rep: dict = {
        "valve_frames_decided": prop(sum(f.status == "decided" for f, *_ in valve), len(valve)),
        "other_view_frames_rejected": prop(sum(f.status in REJECTED_AS_OTHER_VIEW for f, *_ in other), len(other)),
    }
    dec = [x for x in valve if x[0].status == "decided" and x[2] == x[2]]
    y = np.array([int(x[2]) for x in dec])
    if len(np.unique(y)) == 2:
        fr = classification_report(y, np.array([x[0].probability for x in dec]), frame_threshold,
                                   groups=[x[3] for x in dec], n_boot=1000)
        rep["frame"] = headline_metrics(fr)
    exams = exam_results(clips, exam_threshold, aggregate)
    truth = _exam_truth(table)
    ex = [(e, truth.get(e["exam_id"])) for e in exams if e["probability"] is not None]
    ex = [(e, v) for e, v in ex if v is not None]
    ye = np.array([v for _, v in ex])
    if len(np.unique(ye)) == 2:
        er = classification_report(ye, np.array([e["probability"] for e, _ in ex]), exam_threshold,
                                   groups=[_patient_of(table, e["exam_id"]) for e, _ in ex], n_boot=1000)
        rep["exam"] = headline_metrics(er)
    rep["exams_undetermined"] = sum(e["decision"] == "undetermined" for e in exams)
    rep["counts"] = {"frames": len(rows), "valve_frames": len(valve), "other_view_frames": len(other),
                     "exams": len(exams), "patients": len({x[3] for x in rows})}
    return rep


def headline_metrics(report: dict) -> dict:
    """The headline metrics of a ``classification_report`` as {value, low, high} (its primary intervals)."""
    keep = ("auroc", "auprc", "accuracy", "balanced_accuracy", "recall", "specificity", "precision", "f1", "brier")
    out = {}
    for k in keep:
        m = report["metrics"].get(k)
        if m is not None:
            out[k] = {"value": _num(m.estimate), "low": _num(m.lo), "high": _num(m.hi),
                      **({"no_interval": m.note} if m.note else {})}
    cm = report.get("confusion_matrix")
    out["confusion_matrix"] = np.asarray(cm).tolist() if cm is not None else None
    out["n"] = report.get("n")
    return out


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if not np.isfinite(v) else round(v, 4)


def _exam_truth(table) -> dict:
    v = table.frame[(table.frame["role"] == "valve") & table.frame["calcified"].notna()]
    return {str(s): int(g["calcified"].max()) for s, g in v.groupby("study_id")}


def _patient_of(table, study: str) -> str:
    m = table.frame.loc[table.frame["study_id"] == study, "patient_id"]
    return str(m.iloc[0]) if len(m) else study


def choose_exam_threshold(clips, table, screening: ScreeningSettings, frame_threshold: float) -> tuple[float, str]:
    """The exam threshold on validation exams, by the screening rule; the frame threshold (with the reason) when
    the validation exams cannot support a choice."""
    from echoavc.evaluate.classification import choose_threshold, youden
    from echoavc.screening import exam_results

    if screening.exam_threshold_rule == "frame":
        return frame_threshold, "frame threshold (rule 'frame')"
    exams = exam_results(clips, frame_threshold, screening.exam_aggregate)
    truth = _exam_truth(table)
    pairs = [(e["probability"], truth[e["exam_id"]]) for e in exams
             if e["probability"] is not None and e["exam_id"] in truth]
    y = np.array([v for _, v in pairs], dtype=int)
    p = np.array([q for q, _ in pairs], dtype=float)
    if y.sum() == 0 or y.sum() == len(y):
        return frame_threshold, "frame threshold: the validation exams lack a class"
    if screening.exam_threshold_rule == "youden":
        return min(youden(y, p, call_none=True), 1.0), f"Youden on {len(y)} validation exams"
    return float(choose_threshold(y, p, screening.min_recall)), \
        f"highest with recall >= {screening.min_recall} on {len(y)} validation exams ({int(y.sum())} calcified)"


def held_out_test(provisional: Bundle, exam_threshold: float, table, split, work: Path, progress: bool = False,
                  log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """(test summary, test report files) of the finished models with the chosen thresholds on the split's test
    part, through ``echoavc evaluate``; a note and no files when the split has no test part."""
    from echoavc.evaluate.heldout import evaluate_dataset, held_out_summary

    if not split.parts().get("test"):
        return {"note": "The split has no test part: no figure of this bundle is held out; run echoavc evaluate "
                        "on held-out data."}, {}
    log("[4/4] evaluating the finished bundle once on the test patients (echoavc evaluate) ...")
    meta = {**provisional.meta, "thresholds": {**provisional.meta["thresholds"], "exam": float(exam_threshold)}}
    final = Bundle(provisional.folder, meta)  # the same models and the thresholds the bundle will carry
    out = work / "test-report"
    rep = evaluate_dataset(final, table, "test", split, out, "torch", progress=progress)
    files = {Path(p).name: Path(p) for p in rep["files"].values()}
    return held_out_summary(rep, "test/evaluation.md"), files


def train_bundle(data: str | Path, out: str | Path, preset: str = "cpu", split: str | Path | None = None,
                 work: str | Path | None = None, detector: DetectorSettings | None = None,
                 classifier: ClassifierSettings | None = None, screening: ScreeningSettings | None = None,
                 onnx: bool = True, progress: bool = True, log: Callable[[str], None] = print,
                 detector_weights: str | Path | None = None, classifier_model: str | Path | None = None,
                 views: ViewSettings | None = None, view_model: str | Path | None = None) -> Path:
    """Train the detector and the classifier on DATA's split, validate the whole path, write the bundle ``out``.

    ``detector_weights`` (an Ultralytics checkpoint, e.g. from ``echoavc detector train``) or ``classifier_model``
    (a folder from ``echoavc classifier train``) use a stage trained elsewhere instead of training it here; it
    must not have seen DATA's validation patients (the bundle records where it came from).
    ``views`` (settings) trains the view model on the same split and stores it; ``view_model`` (a folder from
    ``echoavc views train``) stores that one. With either, the validation and test screening take psax_av clips
    only, as predict will; without, the bundle has no view model and screens every clip (as before).
    """
    from echoavc.classifier.train import train_classifier
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.detector.train import train_from_table

    data, out = Path(data), Path(out)
    table = DatasetTable.load(data)
    split_path = Path(split) if split else data / "split.json"
    if not split_path.is_file():
        raise EchoAVCError(f"no split file: run `echoavc dataset split --data {data}` first", split_path)
    sp = Split.load(split_path)
    det_s = detector or detector_preset(preset)
    clf_s = classifier or classifier_preset(preset)
    scr = screening or ScreeningSettings()
    work = Path(work) if work else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    det_dir, clf_dir = work / "detector", work / "classifier"
    det_fp = {"table": table.fingerprint, "split": sp.fingerprint, "settings": asdict(det_s)}
    rec = stage_done(det_dir, det_fp)
    if detector_weights is not None:
        if not Path(detector_weights).is_file():
            raise EchoAVCError("no such detector checkpoint", detector_weights)
        log(f"[1/4] detector: given ({detector_weights})")
        rec = {"best": str(detector_weights), "model_name": "given", "seconds": None, "given": True}
    elif rec is None:
        log(f"[1/4] detector ({det_s.model}, {det_s.epochs} epochs at {det_s.imgsz} px) ...")
        res = train_from_table(table, sp, det_dir, det_s, progress=progress)
        if res.warning:
            log(f"warning: {res.warning}")
        rec = {"best": str(res.best), "model_name": res.model_name, "seconds": round(time.perf_counter() - t0, 1)}
        mark_stage_done(det_dir, det_fp, rec)
    else:
        log("[1/4] detector: already trained (work folder)")
    t1 = time.perf_counter()
    clf_fp = {"table": table.fingerprint, "split": sp.fingerprint, "settings": asdict(clf_s)}
    crec = stage_done(clf_dir, clf_fp)
    if classifier_model is not None:
        from echoavc.classifier.predict import read_meta

        clf_dir = Path(classifier_model)
        read_meta(clf_dir)  # one-line error for a folder that is not a classifier
        log(f"[2/4] classifier: given ({clf_dir})")
        crec = {"seconds": None, "given": str(clf_dir)}
    elif crec is None:
        log(f"[2/4] classifier ({clf_s.backbone}/{clf_s.pooling}, {clf_s.epochs} epochs at {clf_s.crop.size} px) ...")
        train_classifier(table, sp, clf_dir, clf_s, log=log if progress else None)
        crec = {"seconds": round(time.perf_counter() - t1, 1)}
        mark_stage_done(clf_dir, clf_fp, crec)
    else:
        log("[2/4] classifier: already trained (work folder)")

    views_dir = _view_stage(table, sp, work, views, view_model, log, progress)
    log("[3/4] validating the whole screening path on the validation patients ...")
    ingest = _ingest_settings_of(table)
    common = dict(detector_weights=rec["best"], classifier_dir=clf_dir, ingest=ingest, screening=scr,
                  detector_settings=det_s, onnx=onnx, views_dir=views_dir)
    provisional = load_bundle(save_bundle(work / "bundle-provisional", exam_threshold=0.5, **common))
    clips = validation_screening(provisional, table, sp, "val", "torch", progress)
    frame_thr = provisional.frame_threshold
    exam_thr, why = choose_exam_threshold(clips, table, scr, frame_thr)
    val = validation_report(clips, table, frame_thr, exam_thr, scr.exam_aggregate)
    val["exam_threshold_rule"] = why
    val["label"] = VALIDATION_LABEL
    cal = (provisional.meta.get("classifier") or {}).get("calibration_data") or {}
    val["classifier_calibration"] = cal
    if cal.get("kind") == "out-of-fold":
        # too few validation patients: the final classifier was trained on them too (docs/classifier.md)
        val["caveat"] = ("optimistic: the validation part was small, so the classifier was cross-validated and "
                         "its final model was trained on the validation patients as well")
    if views_dir is not None:
        from echoavc.views.model import read_meta as read_view_meta

        val["views"] = read_view_meta(views_dir).get("validation")
    training = {"table_fingerprint": table.fingerprint, "split_fingerprint": sp.fingerprint,
                "split_file": str(split_path), "preset": preset, "counts": table.counts(),
                "split": sp.summary(), "detector_seconds": rec.get("seconds"), "classifier_seconds": crec.get("seconds"),
                "detector_given": str(detector_weights) if detector_weights else None,
                "classifier_given": str(classifier_model) if classifier_model else None,
                "detector_settings": asdict(det_s), "classifier_settings": asdict(clf_s)}
    test, test_files = held_out_test(provisional, exam_thr, table, sp, work, progress, log)
    held = (f"Test figures: {test['counts']['exams']} held-out exams of {test['counts']['patients']} patients, "
            "screened once after every choice was made." if test.get("counts") else test.get("note", ""))
    limitations = ([val["caveat"]] if "caveat" in val else []) + [
        "Thresholds chosen on the validation patients; figures on them are optimistic "
        f"({val['counts']['patients']} patients, {val['counts']['exams']} exams). " + held,
        "Frames must be parasternal short-axis views at aortic-valve level; other views are reported as 'no valve'.",
    ]
    int8 = None
    if onnx:  # int8 copies of the ONNX models, their ranges set on validation frames (no image is kept)
        from echoavc.quantise import calibration_from_table

        pre = provisional.preprocess()
        int8 = calibration_from_table(table, sp, clips, pre.crop(), pre.noise_reduction)
        int8 = int8 if int8[0] and int8[1] else None
    path = save_bundle(out, exam_threshold=exam_thr, training=training, validation=val,
                       validation_files={"report.json": val}, limitations=limitations, test=test,
                       test_files=test_files, int8=int8, **common)
    log(f"bundle: {path} (frame threshold {frame_thr:.3f}, exam threshold {exam_thr:.3f}: {why}; "
        f"{time.perf_counter() - t0:.0f} s)")
    return path


def _view_stage(table, split, work: Path, views: ViewSettings | None, view_model, log, progress) -> Path | None:
    """The view model folder to store (trained here with ``views``, or given), or None for no view model."""
    if view_model is not None:
        from echoavc.views.model import read_meta as read_view_meta

        read_view_meta(view_model)  # one-line error for a folder that is not a view model
        log(f"[views] view model: given ({view_model})")
        return Path(view_model)
    if views is None:
        return None
    from echoavc.views.train import train_views

    vdir = work / "views"
    fp = {"table": table.fingerprint, "split": split.fingerprint, "settings": asdict(views)}
    if stage_done(vdir, fp) is not None:
        log("[views] view model: already trained (work folder)")
        return vdir / "model"
    log(f"[views] view model ({views.backbone} at {views.input_size} px, {views.epochs} epochs) ...")
    t = time.perf_counter()
    train_views(table, split, vdir / "model", views, log=log if progress else None)
    mark_stage_done(vdir, fp, {"seconds": round(time.perf_counter() - t, 1)})
    return vdir / "model"


__all__ = ["train_bundle", "validation_screening", "validation_report", "choose_exam_threshold", "headline_metrics",
           "stage_done", "mark_stage_done"]
