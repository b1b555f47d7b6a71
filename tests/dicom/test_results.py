"""The exam's outcome as DICOM: a TID 1500 SR and a secondary capture, checked by dciodvfy and read back
with highdicom. Model-free: the records are built from the synthetic cohort's true valve boxes."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from testkit import dciodvfy_errors

from echoavc.dicom import results as R
from echoavc.errors import EchoAVCError
from echoavc.settings import IngestSettings

META = {"name": "tiny", "files": {"detector.safetensors": "ab" * 32}, "versions": {"echoavc": "0.1.0"},
        "thresholds": {"exam": 0.5}}



@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from echoavc.synth.cohort import make_cohort

    root = tmp_path_factory.mktemp("results_cohort")
    make_cohort(root, 1, seed=3, frames_per_exam=3, exams_per_patient=1, workers=1, progress=False)
    truth = pd.read_csv(root / "frames.csv")
    return root, truth[truth["view"] == "psax_av"].reset_index(drop=True)


def _records(path: Path, row, settings: IngestSettings, decision="calcified", grade=None):
    """predict's exam and frame records for one frame whose box (standard pixels) is the true valve box."""
    data = path.read_bytes()
    t = R.transform_of(data, str(path), settings)
    std = [round(float(v), 2) for v in t.box_to_standard([row.valve_x1, row.valve_y1, row.valve_x2, row.valve_y2])]
    exam = {"exam_id": "E0000000001", "decision": decision, "probability": 0.83, "interval": [0.7, 0.9],
            "threshold": 0.5, "n_frames": 3, "n_decided": 2, "reason": "", "overlay": "", "sources": [str(path)],
            "driving_frame": {"source": str(path), "frame_index": int(row.frame_index), "probability": 0.83}}
    if grade is not None:
        exam["grade"] = grade
    frames = [{"source": str(path), "frame_index": int(row.frame_index), "valve_box": std}]
    return data, exam, frames, t


def test_sr_holds_the_finding_probability_algorithm_and_the_box_in_original_pixels(cohort, tmp_path):
    root, truth = cohort
    row = truth.iloc[-1]
    path = root / row.file
    data, exam, frames, t = _records(path, row, IngestSettings(), grade=2)
    ev = R.exam_evidence(data, str(path), exam, frames, IngestSettings())
    files = R.write_results(ev, META, tmp_path / "dicom")
    assert dciodvfy_errors(files.sr) == [] and dciodvfy_errors(files.sc) == []

    src = pydicom.dcmread(path, stop_before_pixels=True)
    sr = hd.sr.srread(files.sr)
    assert (sr.StudyInstanceUID, sr.PatientID, sr.PatientName) == (src.StudyInstanceUID, src.PatientID,
                                                                     src.PatientName)
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID and R.is_echoavc_result(sr)
    (group,) = sr.content.get_planar_roi_measurement_groups()
    roi = group.roi
    assert roi.GraphicType == "POLYLINE"
    poly = np.asarray(roi.value)
    assert len(poly) == 5 and np.allclose(poly[0], poly[-1])  # closed
    ref = roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert int(ref.ReferencedFrameNumber) == int(row.frame_index) + 1
    # the original frame's pixels: the synthetic cohort's true box, to within a pixel
    assert np.allclose(R.polyline_box(poly), [row.valve_x1, row.valve_y1, row.valve_x2, row.valve_y2], atol=1.0)
    # and, mapped back through the transform, the record's standard box
    assert np.allclose(t.box_to_standard(R.polyline_box(poly)), frames[0]["valve_box"], atol=1.0)
    values = {m.name.meaning: m.value for m in group.get_measurements()}
    assert values["Calibrated probability of aortic valve calcification"] == pytest.approx(0.83)
    assert values["Aortic valve calcification grade"] == 2
    (ev_,) = group.get_qualitative_evaluations()
    assert ev_.value.meaning == "Present"
    algo = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in group[0].ContentSequence
            if i.ValueType == "TEXT"}  # TID 4019, on the group
    assert algo["Algorithm Name"] == "echoavc"
    assert algo["Algorithm Version"] == f"0.1.0+bundle.{R.bundle_hash(META)}"
    comment = sr.content[0].ContentSequence[-1]
    assert "Research use only" in comment.TextValue

    sc = pydicom.dcmread(files.sc)
    assert sc.StudyInstanceUID == src.StudyInstanceUID and sc.SeriesInstanceUID not in (src.SeriesInstanceUID,
                                                                                        sr.SeriesInstanceUID)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID and R.is_echoavc_result(sc)
    assert sc.pixel_array.shape == (int(src.Rows), int(src.Columns), 3)  # no overlay file: the original frame
    assert not R.is_echoavc_result(src)


def test_the_same_exam_and_bundle_give_the_same_uids_and_another_bundle_others(cohort, tmp_path):
    root, truth = cohort
    row = truth.iloc[0]
    path = root / row.file
    data, exam, frames, _ = _records(path, row, IngestSettings())
    ev = R.exam_evidence(data, str(path), exam, frames, IngestSettings())
    a = R.write_results(ev, META, tmp_path / "a")
    b = R.write_results(ev, META, tmp_path / "b")
    c = R.write_results(ev, {**META, "files": {"detector.safetensors": "cd" * 32}}, tmp_path / "c")
    assert (a.sr_uid, a.sc_uid) == (b.sr_uid, b.sc_uid)
    assert len({a.sr_uid, a.sc_uid, c.sr_uid, c.sc_uid}) == 4


def test_an_undetermined_exam_has_no_region_and_says_undetermined(cohort, tmp_path):
    root, truth = cohort
    row = truth.iloc[0]
    path = root / row.file
    data, exam, _, _ = _records(path, row, IngestSettings())
    exam.update(decision="undetermined", probability=None, interval=None, driving_frame=None, n_decided=0,
                reason="no aortic-valve short-axis frame with a confident valve box")
    ev = R.exam_evidence(data, str(path), exam, [], IngestSettings())
    files = R.write_results(ev, META, tmp_path)
    assert dciodvfy_errors(files.sr) == []
    sr = hd.sr.srread(files.sr)
    assert sr.content.get_planar_roi_measurement_groups() == []
    (group,) = sr.content.get_image_measurement_groups()
    assert group.get_qualitative_evaluations()[0].value.meaning == "Undetermined"


def test_the_identified_dicom_folder_must_be_apart_from_the_results_folder(tmp_path):
    from types import SimpleNamespace

    report = SimpleNamespace(out=tmp_path / "results", exams=[], frames=[])
    for inside in (tmp_path / "results", tmp_path / "results" / "dicom", tmp_path):
        with pytest.raises(EchoAVCError, match="must be apart"):
            R.exam_results_to_dicom(report, None, inside)
    assert R.exam_results_to_dicom(report, None, tmp_path / "dicom") == []
