"""Screening a study held in a real Orthanc, by REST and by C-FIND/C-MOVE, with the SR and SC stored back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from testkit import dciodvfy_errors

from echoavc.bundle import load_bundle
from echoavc.dicom import results as R
from echoavc.errors import EchoAVCError
from echoavc.pacs import parse_source, screen_study
from echoavc.pacs.orthanc import PASSWORD_ENV, USER_ENV

from pacs_kit import PASSWORD, USER, free_port

SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"



def classes_in(orthanc, study_uid: str) -> list[str]:
    """The SOP Class UID of every instance Orthanc holds for the study."""
    (sid,) = orthanc.rest("POST", "/tools/find", f'{{"Level":"Study","Query":{{"StudyInstanceUID":"{study_uid}"}}}}'
                          .encode())
    return [orthanc.rest("GET", f"/instances/{i['ID']}/simplified-tags")["SOPClassUID"]
            for i in orthanc.rest("GET", f"/studies/{sid}/instances")]


@pytest.fixture(scope="module")
def runs(orthanc, screening_bundle, tmp_path_factory):
    """Study A screened twice by REST, study B twice by C-FIND/C-MOVE (then once more by REST)."""
    root = tmp_path_factory.mktemp("pacs_runs")
    a, b = sorted(orthanc.studies)[:2]
    mp = pytest.MonkeyPatch()
    mp.setenv(USER_ENV, USER)
    mp.setenv(PASSWORD_ENV, PASSWORD)
    rest_url = f"orthanc://127.0.0.1:{orthanc.http_port}"
    dimse_url = f"dicom://{orthanc.ae}@127.0.0.1:{orthanc.dicom_port}"
    common = dict(model=screening_bundle.bundle, settings=screening_bundle.settings, local_ae=orthanc.scp_ae,
                  local_port=orthanc.scp_port)
    out = {}
    try:
        out["rest"] = [screen_study(rest_url, a, out=root / "a", dicom_out=root / "a-dicom", **common)
                       for _ in range(2)]
        out["dimse"] = [screen_study(dimse_url, b, out=root / "b", dicom_out=root / "b-dicom", **common)
                        for _ in range(2)]
        # a third run by the other path, keeping its fetched copies for the ``pacs results`` test, with the
        # ingest key (keyed exam ids)
        out["dimse"].append(screen_study(rest_url, b, out=root / "b2", dicom_out=root / "b2-dicom",
                                         keep_fetched=True, key=root / "keys" / "echoavc.key", **common))
    finally:
        mp.undo()
    return dict(out, a=a, b=b, root=root)


@pytest.mark.parametrize("path", ["rest", "dimse"])
def test_two_runs_leave_exactly_one_sr_and_one_sc_per_exam(orthanc, runs, path):
    study = runs["a" if path == "rest" else "b"]
    first, second = runs[path][:2]
    n_sources = len(orthanc.studies[study])
    classes = classes_in(orthanc, study)
    assert classes.count(SR_CLASS) == 1 and classes.count(SC_CLASS) == 1
    assert len(classes) == n_sources + 2
    assert first.fetched == second.fetched == n_sources
    # the second run saw the first run's SR and SC and left them out
    assert (first.skipped_own, second.skipped_own) == (0, 2)
    assert [r.sr_uid for r in first.results] == [r.sr_uid for r in second.results]
    assert len(first.report.exams) == 1 and len(first.results) == 1 and not first.failures
    # the fetched copies (identified) are gone
    assert not any((runs["root"] / f"{'a' if path == 'rest' else 'b'}-dicom" / ".incoming").rglob("*.dcm"))


def test_with_the_ingest_key_exam_ids_are_the_keyed_study_pseudonyms(runs):
    from echoavc.dicom.deid import PseudonymKey
    from echoavc.screening import exam_id_of

    keyed, plain = runs["dimse"][2], runs["dimse"][0]
    want = PseudonymKey(runs["root"] / "keys" / "echoavc.key").pseudonym("study", runs["b"])
    assert [e["exam_id"] for e in keyed.report.exams] == [want] == [r.exam_id for r in keyed.results]
    assert [e["exam_id"] for e in plain.report.exams] == [exam_id_of(runs["b"])]
    assert (runs["root"] / "b2" / "exams.csv").read_text().splitlines()[1].startswith(want + ",")


def test_dcmtk_findscu_sees_one_sr_series_and_one_sc_series_of_one_instance_each(orthanc, runs):
    """An independent peer (dcmtk) agrees with Orthanc's REST view."""
    if shutil.which("findscu") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("findscu (dcmtk) is not installed")
        pytest.skip("dcmtk not installed")
    for study in (runs["a"], runs["b"]):
        res = subprocess.run(["findscu", "-S", "-aet", orthanc.scp_ae, "-aec", orthanc.ae, "-k",
                              "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}", "-k", "Modality",
                              "-k", "SeriesDescription", "-k", "NumberOfSeriesRelatedInstances",
                              "127.0.0.1", str(orthanc.dicom_port)], capture_output=True, text=True, timeout=30)
        answers = (res.stdout + res.stderr).split("Find Response:")[1:]
        ours = [a for a in answers if "echoavc AVC screening" in a]
        assert len(answers) == len(ours) + len({pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID
                                                 for f in orthanc.studies[study]})
        assert sorted("[SR]" in a for a in ours) == [False, True]  # one SR series, one SC series
        assert all(re.search(r"\(0020,1209\) IS \[1 ?\]", a) for a in ours)  # NumberOfSeriesRelatedInstances


def test_pacs_results_rebuilds_the_same_objects_from_a_results_folder(runs, screening_bundle, tmp_path):
    from typer.testing import CliRunner

    from echoavc.pacs.cli import pacs_app

    res = CliRunner().invoke(pacs_app, ["results", str(runs["root"] / "b2"), "--model",
                                        str(screening_bundle.bundle), "--dicom-out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    written = sorted(p.name for p in tmp_path.rglob("*.dcm"))
    (screened,) = runs["dimse"][2].results
    assert written == sorted([screened.sr.name, screened.sc.name])
    res = CliRunner().invoke(pacs_app, ["screen", "orthanc://127.0.0.1:9", "--study", "1.2.3", "--model",
                                        str(screening_bundle.bundle), "--out", str(tmp_path / "o"),
                                        "--dicom-out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "cannot reach Orthanc" in res.output and res.output.count("\n") == 1


def test_the_stored_sr_is_valid_and_its_polyline_is_frames_csv_box(orthanc, runs, screening_bundle, tmp_path):
    study = runs["a"]
    (sid,) = orthanc.rest("POST", "/tools/find", f'{{"Level":"Study","Query":{{"StudyInstanceUID":"{study}"}}}}'
                          .encode())
    sr_file = None
    for i in orthanc.rest("GET", f"/studies/{sid}/instances"):
        if orthanc.rest("GET", f"/instances/{i['ID']}/simplified-tags")["SOPClassUID"] == SR_CLASS:
            sr_file = tmp_path / "sr.dcm"
            sr_file.write_bytes(orthanc.rest("GET", f"/instances/{i['ID']}/file"))
    assert sr_file is not None
    assert dciodvfy_errors(sr_file) == []
    sr = hd.sr.srread(sr_file)
    (group,) = sr.content.get_planar_roi_measurement_groups()
    ref = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
    source = next(f for f in orthanc.studies[study]
                  if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID == ref.ReferencedSOPInstanceUID)
    frames = pd.read_csv(runs["root"] / "a" / "frames.csv")
    exam = runs["rest"][1].report.exams[0]
    frame_number = int(ref.get("ReferencedFrameNumber", 1))  # absent for a single-frame instance
    assert frame_number - 1 == exam["driving_frame"]["frame_index"]
    row = frames[(frames["frame_index"] == frame_number - 1)
                 & (frames["source"] == exam["driving_frame"]["source"])]
    assert len(row) == 1
    t = R.transform_of(source.read_bytes(), str(source), load_bundle(screening_bundle.bundle).ingest_settings())
    std = t.box_to_standard(R.polyline_box(group.roi.value))
    assert np.allclose(std, row[["valve_x1", "valve_y1", "valve_x2", "valve_y2"]].to_numpy(float)[0], atol=1.0)
    p = {m.name.meaning: m.value for m in group.get_measurements()}
    assert p["Calibrated probability of aortic valve calcification"] == pytest.approx(exam["probability"], abs=1e-6)


def test_the_results_folder_holds_no_identifiers_and_the_dicom_folder_does(orthanc, runs):
    study = runs["a"]
    src = pydicom.dcmread(orthanc.studies[study][0], stop_before_pixels=True)
    needles = [str(src.PatientID), str(src.PatientName).split("^")[0], study, str(src.SOPInstanceUID)]
    for f in (runs["root"] / "a").rglob("*"):
        if f.is_file() and f.suffix in (".csv", ".json", ".html"):
            text = f.read_text(errors="replace")
            assert not [n for n in needles if n in text], f
    (res,) = runs["rest"][1].results
    sr = pydicom.dcmread(res.sr)
    assert (sr.PatientID, sr.StudyInstanceUID) == (src.PatientID, study)


def test_errors_are_one_clear_line(orthanc, screening_bundle, tmp_path, monkeypatch):
    study = sorted(orthanc.studies)[0]
    kw = dict(model=screening_bundle.bundle, out=tmp_path / "o", dicom_out=tmp_path / "d")
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    dimse = f"dicom://ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    cases = [
        (f"orthanc://127.0.0.1:{_closed_port()}", study, "ECHOAVC", "cannot reach Orthanc"),
        (f"orthanc://127.0.0.1:{orthanc.http_port}", "1.2.3.4.5", "ECHOAVC", "study 1.2.3.4.5 not found"),
        (dimse, study, "NOBODY", "association rejected"),  # a calling AE title Orthanc does not know
        (dimse, "1.2.3.4.5", "ECHOAVC", "study 1.2.3.4.5 not found"),
        (f"dicom://ORTHANC@127.0.0.1:{_closed_port()}", study, "ECHOAVC", "cannot reach the PACS"),
    ]
    for url, uid, ae, words in cases:
        with pytest.raises(EchoAVCError, match=words) as exc:
            screen_study(url, uid, local_ae=ae, local_port=orthanc.scp_port, **kw)
        assert "\n" not in str(exc.value), (url, uid)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(EchoAVCError, match="refused the credentials"):
        screen_study(f"orthanc://127.0.0.1:{orthanc.http_port}", study, **kw)
    with pytest.raises(EchoAVCError, match="credentials do not belong in the URL"):
        parse_source(f"orthanc://u:p@127.0.0.1:{orthanc.http_port}")


def _closed_port() -> int:
    return free_port()  # nobody listens there once the probe socket is closed


def test_studies_are_found_by_patient_and_by_date_on_both_paths(orthanc, monkeypatch):
    from datetime import date, timedelta

    from echoavc.pacs import find_studies

    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    urls = [f"orthanc://127.0.0.1:{orthanc.http_port}", f"dicom://{orthanc.ae}@127.0.0.1:{orthanc.dicom_port}"]
    for study, files in orthanc.studies.items():
        src = pydicom.dcmread(files[0], stop_before_pixels=True)
        day = date(int(src.StudyDate[:4]), int(src.StudyDate[4:6]), int(src.StudyDate[6:]))
        for url in urls:
            # one exam per synthetic patient
            assert find_studies(url, patient=str(src.PatientID), local_ae=orthanc.scp_ae) == [study]
            assert study in find_studies(url, since=day.isoformat(), local_ae=orthanc.scp_ae)
            later = (day + timedelta(days=1)).isoformat()
            assert study not in find_studies(url, since=later, local_ae=orthanc.scp_ae)
            assert find_studies(url, patient=str(src.PatientID), since=later, local_ae=orthanc.scp_ae) == []


def test_echoavc_pacs_screen_by_patient_replaces_the_results(orthanc, runs, screening_bundle, tmp_path):
    from typer.testing import CliRunner

    from echoavc.pacs.cli import pacs_app

    study = runs["b"]
    pid = str(pydicom.dcmread(orthanc.studies[study][0], stop_before_pixels=True).PatientID)
    res = CliRunner().invoke(pacs_app, [
        "screen", f"dicom://{orthanc.ae}@127.0.0.1:{orthanc.dicom_port}", "--patient", pid,
        "--ae-title", orthanc.scp_ae, "--port", str(orthanc.scp_port), "--model", str(screening_bundle.bundle),
        "--out", str(tmp_path / "results"), "--dicom-out", str(tmp_path / "dicom"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"1 studies, {len(orthanc.studies[study])} instances screened (2 echoavc results left out)" in res.output
    classes = classes_in(orthanc, study)
    assert classes.count(SR_CLASS) == 1 and classes.count(SC_CLASS) == 1
    # and the copy in Orthanc is this run's (Orthanc configured to overwrite; over REST echoavc replaces it)
    (local,) = (tmp_path / "dicom").rglob("sr-*.dcm")
    mine = pydicom.dcmread(local)
    (iid,) = orthanc.rest("POST", "/tools/find", f'{{"Level":"Instance","Query":{{"SOPInstanceUID":'
                          f'"{mine.SOPInstanceUID}"}}}}'.encode())
    stored = pydicom.dcmread(__import__("io").BytesIO(orthanc.rest("GET", f"/instances/{iid}/file")))
    assert (stored.ContentDate, stored.ContentTime) == (mine.ContentDate, mine.ContentTime)


def test_predict_with_dicom_out_on_files_writes_the_objects_the_pacs_path_stored(orthanc, runs, screening_bundle,
                                                                                 tmp_path):
    """``echoavc predict FILES --dicom-out DIR`` (the command, through screen_inputs): the PACS run's UIDs."""
    from typer.testing import CliRunner

    from echoavc.cli import app
    from echoavc.pacs import screen_inputs

    files = orthanc.studies[runs["a"]]
    s = screening_bundle.settings
    res = CliRunner().invoke(app, ["predict", *map(str, files), "--model", str(screening_bundle.bundle),
                                   "--out", str(tmp_path / "results"), "--dicom-out", str(tmp_path / "dicom"),
                                   "--valve-conf", str(s.valve_conf), "--decide-conf", str(s.decide_conf),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "results" / "exams.csv").read_text().splitlines()) == 2  # header + one exam
    (pacs_run,) = runs["rest"][0].results
    assert sorted(p.name for p in (tmp_path / "dicom").rglob("*.dcm")) == sorted([pacs_run.sr.name, pacs_run.sc.name])
    with pytest.raises(EchoAVCError, match="need a PACS source"):
        screen_inputs(files, screening_bundle.bundle, tmp_path / "r2", study="1.2.3")
    with pytest.raises(EchoAVCError, match="needs --dicom-out"):
        screen_inputs([f"orthanc://127.0.0.1:{orthanc.http_port}"], screening_bundle.bundle, tmp_path / "r3",
                      study="1.2.3")
