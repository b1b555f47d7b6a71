"""``echoavc evaluate``: metrics of the whole screening path on held-out data, undetermined exams never dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import typer
from typer.testing import CliRunner

from echoavc.evaluate.screening import ExamTruth, evaluate_screening
from echoavc.screening import ClipResult, FrameResult


def _clip(exam, src, probs, status="decided"):
    frames = [FrameResult(exam, src, i, status, 0.9 if status == "decided" else None,
                          [1.0, 2.0, 30.0, 40.0] if status == "decided" else None, p if status == "decided" else None)
              for i, p in enumerate(probs)]
    return ClipResult(src, src, exam, frames, 0 if status == "decided" else None)


# ---------------------------------------------------------------- arithmetic (no models)


def test_undetermined_exams_are_counted_both_ways_and_never_dropped():
    clips = [_clip("E1", "a", [0.9, 0.8]), _clip("E1", "b", [0.7]), _clip("E2", "c", [0.1, 0.2]),
             _clip("E5", "g", [0.95]), _clip("E6", "h", [0.05]),
             _clip("E3", "d", [None, None], "no_cone")]
    truth = {e: ExamTruth(e, f"P{e}", y, grade=(2 if y else 0), vendor="V1" if e in ("E1", "E2") else "V2")
             for e, y in (("E1", 1), ("E2", 0), ("E3", 1), ("E4", 0), ("E5", 1), ("E6", 0))}
    # E4: its only file failed (truncated); E3: no cone in its only file
    report, rows = evaluate_screening(clips, truth, 0.5, 0.5, "mean", failed={"E4": ["e.dcm"]}, n_boot=200)
    c = report["counts"]
    assert (c["exams"], c["exams_decided"], c["exams_undetermined"]) == (6, 4, 2)
    assert (c["undetermined_calcified"], c["undetermined_normal"], c["failed_files"]) == (1, 1, 1)
    assert report["coverage"]["exams"]["count"] == "4/6"
    dec, err = report["exam_decided"], report["exam_undetermined_as_errors"]
    assert dec["recall"]["count"] == "2/2" and dec["specificity"]["count"] == "2/2"
    # the missed calcified exam lowers recall, the undetermined normal exam lowers specificity
    assert err["recall"]["count"] == "2/3" and err["specificity"]["count"] == "2/3"
    assert err["auroc"]["value"] < dec["auroc"]["value"] == 1.0
    for m in (dec["recall"], err["recall"]):
        assert m["low"] <= m["value"] <= m["high"]
    assert {u["exam_id"] for u in report["undetermined"]} == {"E3", "E4"}
    by = {r["exam_id"]: r for r in rows}
    assert by["E4"]["n_failed_files"] == 1 and by["E4"]["decision"] == "undetermined"
    assert "cone" in by["E3"]["reason"]
    assert set(dec["by_vendor"]) == {"V1", "V2"} and set(dec["recall_by_grade"]) == {"2"}
    # a labelled exam with no file at all is undetermined too, not left out
    more = {**truth, "E7": ExamTruth("E7", "PE7", 1, 1)}
    r2, _ = evaluate_screening(clips, more, 0.5, 0.5, "mean", failed={"E4": ["e.dcm"]}, missing=["E7"], n_boot=200)
    assert (r2["counts"]["exams"], r2["counts"]["exams_undetermined"], r2["counts"]["exams_without_files"]) == (7, 3, 1)
    assert r2["exam_undetermined_as_errors"]["recall"]["count"] == "2/4"
    assert "no input file" in {u["exam_id"]: u for u in r2["undetermined"]}["E7"]["reason"]
    # clips judged alone: E1's two clips and the other decided ones
    assert (c["clips"], c["clips_decided"]) == (6, 5)
    assert report["clip"]["n"] == 5


# ---------------------------------------------------------------- a dataset's test part


def test_evaluate_dataset_test_part_writes_the_report(screening_bundle, tmp_path):
    from echoavc.evaluate.heldout import evaluate_dataset

    study = screening_bundle.study
    out = tmp_path / "eval"
    rep = evaluate_dataset(screening_bundle.bundle, study.table, "test", study.split, out, "onnx", n_boot=200,
                           settings=screening_bundle.settings)
    test_patients = set(study.split.parts()["test"])
    tf = study.table.frame
    test_exams = set(tf.loc[tf["patient_id"].isin(test_patients), "study_id"])
    assert rep["counts"]["exams"] == len(test_exams) and rep["counts"]["patients"] == len(test_patients)
    assert rep["data"]["label"].startswith("test (held out")
    assert rep["thresholds"]["exam"] == pytest.approx(json.loads(
        (screening_bundle.bundle / "bundle.json").read_text())["thresholds"]["exam"], abs=1e-4)
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["counts"] == rep["counts"] and "_arrays" not in doc
    assert set(pd.read_csv(out / "exams.csv", dtype=str)["exam_id"]) == test_exams
    for level in ("exam", "frame"):  # a reliability diagram and a ROC curve wherever both classes were scored
        assert (out / f"roc_{level}.png").is_file() == (out / f"reliability_{level}.png").is_file()
    if rep["frame"] is not None:
        assert (out / "roc_frame.png").is_file()
    md = (out / "evaluation.md").read_text()
    assert "undetermined counted as errors" in md and "coverage" in md
    fc = rep["frame_coverage"]["valve_frames_decided"]
    assert fc["count"].endswith("/" + str(int(((tf["role"] == "valve") & tf["patient_id"].isin(test_patients)).sum())))


def test_the_cli_refuses_a_part_the_split_lacks_and_needs_one_source(screening_bundle, tmp_path):
    from echoavc.evaluate.cli import evaluate_command

    app = typer.Typer()
    app.command()(evaluate_command)
    r = CliRunner().invoke(app, ["--model", str(screening_bundle.bundle), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "either --data" in r.output
    r = CliRunner().invoke(app, ["--model", str(screening_bundle.bundle), "--out", str(tmp_path / "o"),
                                 "--exams", str(tmp_path)])
    assert r.exit_code == 2 and "--labels" in r.output


# ---------------------------------------------------------------- raw exams with labels


def _blank_pixels(path: Path) -> None:
    ds = pydicom.dcmread(path)
    arr = np.zeros_like(ds.pixel_array)  # decoded (RGB for colour), written back uncompressed
    ds.set_pixel_data(arr, "RGB" if int(ds.SamplesPerPixel) == 3 else "MONOCHROME2", int(ds.BitsStored))
    ds.save_as(path)


@pytest.fixture(scope="module")
def heldout_with_bad_files(tmp_path_factory):
    """A held-out cohort (another seed) where one calcified exam has no cone in any file and one normal exam
    has every file truncated (as the demo truncates its example)."""
    from echoavc.synth.cohort import make_cohort

    root = tmp_path_factory.mktemp("heldout")
    cohort = make_cohort(root / "cohort", 6, seed=900123, frames_per_exam=4, exams_per_patient=1, workers=1,
                         progress=False, prevalence=0.5)
    lab = pd.read_csv(cohort.labels, dtype=str)
    frames = pd.read_csv(cohort.frames, dtype=str)
    calc = lab[lab["calcified"] == "1"].iloc[0]
    norm = lab[lab["calcified"] == "0"].iloc[0]
    cohort_dir = Path(cohort.labels).parent

    def files(uid):
        return sorted({cohort_dir / f for f in frames.loc[frames["study_instance_uid"] == uid, "file"]})

    for f in files(calc["study_instance_uid"]):
        _blank_pixels(f)
    for f in files(norm["study_instance_uid"]):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    return cohort_dir, calc["study_instance_uid"], norm["study_instance_uid"], len(lab)


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_evaluate_exams_counts_no_cone_and_truncated_exams_as_undetermined(screening_bundle, heldout_with_bad_files,
                                                                           tmp_path, key_path, keyed):
    from echoavc.dicom.deid import PseudonymKey
    from echoavc.evaluate.heldout import evaluate_exams
    from echoavc.screening import exam_id_of as plain_id

    cohort_dir, no_cone, truncated, n_exams = heldout_with_bad_files
    rep = evaluate_exams(screening_bundle.bundle, cohort_dir / "dicom", cohort_dir / "labels.csv", tmp_path / "ev",
                         backend="onnx", n_boot=200, settings=screening_bundle.settings,
                         key=key_path if keyed else None)
    secret = PseudonymKey(key_path).secret if keyed else None

    def exam_id_of(uid):  # with --key, labels.csv's Study Instance UIDs join through the keyed pseudonyms
        return plain_id(uid, secret)

    c = rep["counts"]
    assert c["exams"] == n_exams  # nothing dropped: every labelled exam found under the same id
    if keyed:
        assert all(r["exam_id"].startswith("E-") for r in rep["undetermined"])
    und = {u["exam_id"]: u for u in rep["undetermined"]}
    assert exam_id_of(no_cone) in und and exam_id_of(truncated) in und
    assert und[exam_id_of(truncated)]["failed_files"] and "cone" in und[exam_id_of(no_cone)]["reason"]
    assert c["undetermined_calcified"] >= 1 and c["undetermined_normal"] >= 1
    assert c["failed_files"] == len(rep["data"]["failed_files"]) >= 1
    n_dec = c["exams_decided"]
    assert rep["coverage"]["exams"]["count"] == f"{n_dec}/{n_exams}" and n_dec <= n_exams - 2
    err = rep["exam_undetermined_as_errors"]
    pos, neg = err["n_positive"], err["n"] - err["n_positive"]
    # undetermined counted as errors: the no-cone calcified exam is a miss, the truncated normal exam a false alarm
    assert err["confusion_matrix"]["fn"] >= c["undetermined_calcified"] and pos + neg == n_exams
    assert err["confusion_matrix"]["fp"] >= c["undetermined_normal"]
    dec = rep["exam_decided"]
    if dec is not None:
        assert dec["n"] == n_dec
    rows = pd.read_csv(tmp_path / "ev" / "exams.csv", dtype=str)
    assert len(rows) == n_exams
    assert set(rows.loc[rows["decision"] == "undetermined", "exam_id"]) >= {exam_id_of(no_cone), exam_id_of(truncated)}


# ---------------------------------------------------------------- train's test report


def test_a_bundle_trained_on_a_three_part_split_carries_its_test_report(screening_bundle):
    from echoavc.bundle import VALIDATION_LABEL, load_bundle

    b = load_bundle(screening_bundle.bundle)
    study = screening_bundle.study
    test_patients = set(study.split.parts()["test"])
    tf = study.table.frame
    test = b.meta["test_summary"]
    assert test["label"].startswith("test (held out")
    assert test["counts"]["patients"] == len(test_patients)
    assert test["counts"]["exams"] == tf.loc[tf["patient_id"].isin(test_patients), "study_id"].nunique()
    assert test["thresholds"]["exam"] == pytest.approx(b.exam_threshold, abs=1e-4)
    assert {"test/evaluation.md", "test/evaluation.json", "test/exams.csv"} <= set(b.meta["files"])
    report = json.loads((b.folder / "test" / "evaluation.json").read_text())
    assert report["counts"] == test["counts"] and report["data"]["part"] == "test"
    # nothing about validation passes for held-out skill
    assert b.meta["validation_summary"]["label"] == VALIDATION_LABEL
    card = (b.folder / "MODEL_CARD.md").read_text()
    assert "## Validation (used for model selection; optimistic)" in card and "## Test (held-out patients" in card
    assert b.card()["test"] == test


def test_the_cli_evaluates_a_dataset_part_and_prints_both_ways(screening_bundle, tmp_path):
    from echoavc.evaluate.cli import evaluate_command

    app = typer.Typer()
    app.command()(evaluate_command)
    study = screening_bundle.study
    split = copy.copy(study.split).save(tmp_path / "split.json")  # a copy: the fixture's split stays as it is
    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["--model", str(screening_bundle.bundle), "--data", str(study.root / "table"),
                                 "--split", str(split), "--out", str(out), "--n-boot", "200", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "test (held out" in r.output and "undetermined = error" in r.output
    assert (out / "evaluation.md").is_file() and (out / "evaluation.json").is_file()
    r = CliRunner().invoke(app, ["--model", str(screening_bundle.bundle), "--data", str(study.root / "table"),
                                 "--split", str(split), "--part", "holdout", "--out", str(out)])
    assert r.exit_code == 2 and "part must be one of" in r.output
