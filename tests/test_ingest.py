"""``echoavc ingest`` end to end on real ultrasound files."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

from testkit import shipped_file
from echoavc.cli import app
from echoavc.cone import Cone
from echoavc.cone.transform import StandardTransform
from echoavc.ingest import MANIFEST_COLUMNS, ingest
from echoavc.settings import IngestSettings

runner = CliRunner()


def write_variant(src_name: str, dest: Path, patient: str, **attrs) -> Path:
    """A copy of a shipped file as another patient's exam (new UIDs, so new content and ids)."""
    ds = pydicom.dcmread(shipped_file(src_name))
    ds.PatientID = patient
    ds.PatientName = f"{patient}^TEST"
    ds.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[patient, "study"])
    ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[patient, "series", src_name])
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[patient, "sop", src_name])
    for k, v in attrs.items():
        setattr(ds, k, v)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


@pytest.fixture
def small_batch(tmp_path) -> Path:
    src = tmp_path / "in"
    write_variant("examples_ybr_color.dcm", src / "a" / "clip1.dcm", "PAT001")
    write_variant("examples_ybr_color.dcm", src / "a" / "clip2.dcm", "PAT002")
    write_variant("JPGLosslessP14SV1_1s_1f_8b.dcm", src / "b" / "epiq.dcm", "PAT003")
    write_variant("US1_J2KR.dcm", src / "b" / "j2k.dcm", "PAT004")
    write_variant("OBXXXX1A_rle_2frame.dcm", src / "c" / "palette.dcm", "PAT005")
    return src


def test_manifest_is_the_contract(small_batch, tmp_path, key_path):
    out = tmp_path / "out"
    report = ingest([small_batch], out, key_path, progress=False)
    assert report.failed == 0 and report.done == 5
    m = pd.read_csv(out / "manifest.csv")
    assert list(m.columns) == MANIFEST_COLUMNS
    assert len(m) == 30 + 30 + 1 + 1 + 2 == report.frames
    # polars reads it too
    import polars as pl

    assert pl.read_csv(out / "manifest.csv").height == len(m)
    # one row per frame, keyed by content hash and frame index
    assert not m.duplicated(["source_sha256", "frame_index"]).any()
    assert m["patient_id"].nunique() == 5 and m["patient_id"].str.startswith("P-").all()
    assert (m["patient_id_source"] == "PatientID").all()
    for _, row in m.iterrows():
        img = np.asarray(Image.open(out / row.image_path))
        assert img.shape[:2] == (640, 640)
        # the transform maps the cone's bounding box into the standard image
        t = StandardTransform.from_dict({**row, "size": row.std_size})
        x1, y1, x2, y2 = t.box_to_standard([row.crop_x, row.crop_y, row.crop_x + row.crop_w, row.crop_y + row.crop_h])
        assert max(x2 - x1, y2 - y1) == pytest.approx(640)
        cone = Cone.from_dict(__import__("json").loads(row.cone))
        assert cone.kind in ("sector", "rectangle", "hull")
    sonosite = m[m.manufacturer.str.startswith("SonoSite")]
    assert sonosite.frame_time_ms.iloc[1] == pytest.approx(33.333, abs=0.01)
    assert sonosite.pixel_spacing_x_mm.notna().all()


def test_every_nth_and_modality_filter(small_batch, tmp_path, key_path):
    out = tmp_path / "out"
    settings = IngestSettings(every_nth=10)
    report = ingest([small_batch / "a"], out, key_path, settings, progress=False)
    m = pd.read_csv(out / "manifest.csv")
    assert sorted(m.frame_index.unique()) == [0, 10, 20] and report.frames == 6
    out2 = tmp_path / "out2"
    report = ingest([small_batch / "a"], out2, key_path, IngestSettings(modalities=("MR",)), progress=False)
    assert report.skipped == 2 and report.done == 0 and report.failed == 0


def test_pseudonyms_are_stable_per_key_and_differ_between_keys(small_batch, tmp_path, key_path):
    ingest([small_batch / "a"], tmp_path / "o1", key_path, IngestSettings(every_nth=30), progress=False)
    ingest([small_batch / "a"], tmp_path / "o2", key_path, IngestSettings(every_nth=30), progress=False)
    other_key = tmp_path / "other" / "k"
    ingest([small_batch / "a"], tmp_path / "o3", other_key, IngestSettings(every_nth=30), progress=False)
    m1, m2, m3 = (pd.read_csv(tmp_path / o / "manifest.csv") for o in ("o1", "o2", "o3"))
    assert list(m1.patient_id) == list(m2.patient_id)
    assert set(m1.patient_id).isdisjoint(m3.patient_id)
    assert oct(key_path.stat().st_mode)[-3:] == "600"
    # the map from originals to pseudonyms lives beside the key, never in the output
    pmap = pd.read_csv(key_path.with_name(key_path.name + ".pseudonyms.csv"))
    assert {"PAT001", "PAT002"} <= set(pmap.original)
    for p in (tmp_path / "o1").rglob("*"):
        if p.is_file():
            assert b"PAT001" not in p.read_bytes()


def test_missing_patient_id_falls_back_to_the_study(tmp_path, key_path):
    src = write_variant("examples_ybr_color.dcm", tmp_path / "in" / "x.dcm", "IGNORED", PatientID="")
    result = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "out"), "--key", str(key_path),
                                 "--every", "15", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "no PatientID" in result.output
    m = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert (m.patient_id_source == "StudyInstanceUID").all() and m.patient_id.str.startswith("P-").all()


def test_corrupt_file_among_good_ones(small_batch, tmp_path, key_path):
    data = (small_batch / "a" / "clip1.dcm").read_bytes()
    (small_batch / "a" / "broken.dcm").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = runner.invoke(app, ["ingest", str(small_batch), "--out", str(out), "--key", str(key_path),
                                 "--no-progress"])
    assert result.exit_code == 1
    failures = list(csv.DictReader(open(out / "failures.csv")))
    assert len(failures) == 1
    assert "truncated" in failures[0]["reason"] or "ends early" in failures[0]["reason"]
    assert "broken.dcm" in result.output  # the terminal names the file ...
    assert "broken.dcm" not in (out / "failures.csv").read_text()  # ... the output folder does not
    m = pd.read_csv(out / "manifest.csv")
    assert len(m) == 64 and m.source_sha256.nunique() == 5
    assert len(list((out / "frames").rglob("*.png"))) == 64
    assert not list(out.rglob("*.tmp"))
    sources = pd.read_csv(key_path.with_name(key_path.name + ".sources.csv"))
    assert (sources.status == "failed").sum() == 1


def test_not_dicom_and_missing_inputs_are_reported(tmp_path, key_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), str(tmp_path / "nowhere"), "--out",
                                 str(tmp_path / "out"), "--key", str(key_path), "--no-progress"])
    assert result.exit_code == 1
    assert "notes.txt: not a DICOM file" in result.output
    assert "nowhere: no such file or folder" in result.output


def test_zip_archives_are_read(small_batch, tmp_path, key_path):
    import zipfile

    archive = tmp_path / "exams.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(small_batch / "b" / "epiq.dcm", "exam/epiq.dcm")
        zf.write(small_batch / "b" / "j2k.dcm", "exam/j2k.dcm")
    report = ingest([archive], tmp_path / "out", key_path, progress=False)
    assert report.done == 2 and report.frames == 2


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


KILLER = """
import os, sys
import echoavc.ingest as ing
real = ing.process_file
calls = [0]
def dying(*a, **k):
    if calls[0] == int(sys.argv[1]):
        os._exit(9)  # a hard kill: no clean-up runs
    calls[0] += 1
    return real(*a, **k)
ing.process_file = dying
ing.ingest([sys.argv[2]], sys.argv[3], sys.argv[4], ing.IngestSettings(qc=True), progress=False)
"""


def test_killed_batch_resumes_to_identical_output(small_batch, tmp_path, key_path):
    full = tmp_path / "full"
    ingest([small_batch], full, key_path, IngestSettings(qc=True), progress=False)
    part = tmp_path / "part"
    proc = subprocess.run([sys.executable, "-c", KILLER, "2", str(small_batch), str(part), str(key_path)])
    assert proc.returncode == 9
    assert len(list((part / ".state").glob("*.json"))) == 2  # it really stopped part-way
    report = ingest([small_batch], part, key_path, IngestSettings(qc=True), progress=False)
    assert report.resumed == 2 and report.done == 3
    assert _tree(part) == _tree(full)


def test_changed_settings_redo_the_files(small_batch, tmp_path, key_path):
    out = tmp_path / "out"
    ingest([small_batch / "b"], out, key_path, progress=False)
    again = ingest([small_batch / "b"], out, key_path, progress=False)
    assert again.resumed == 2 and again.done == 0
    redo = ingest([small_batch / "b"], out, key_path, IngestSettings(qc=True), progress=False)
    assert redo.resumed == 0 and redo.done == 2 and len(list((out / "qc").rglob("*.png"))) == 2


def test_workers_give_the_same_output(small_batch, tmp_path, key_path):
    one, two = tmp_path / "one", tmp_path / "two"
    ingest([small_batch], one, key_path, progress=False)
    ingest([small_batch], two, key_path, workers=2, progress=False)
    assert _tree(one) == _tree(two)


def test_qc_pictures(small_batch, tmp_path, key_path):
    out = tmp_path / "out"
    ingest([small_batch / "b"], out, key_path, IngestSettings(qc=True), progress=False)
    qc = sorted((out / "qc").rglob("*.png"))
    assert len(qc) == 2
    for p in qc:
        img = np.asarray(Image.open(p))
        assert img.shape[0] == 480 and img.shape[1] > 480 + 8 + 100
        # the cone outline is drawn in green
        green = (img[..., 1] > 200) & (img[..., 0] < 80) & (img[..., 2] < 80)
        assert green.sum() > 200


@pytest.mark.parametrize("colour, expected", [((255, 255, 0), "coloured marks"), ((255, 255, 255), "static bright marks")])
def test_marks_burned_in_inside_the_field_are_flagged(tmp_path, key_path, colour, expected):
    """A mask cannot remove text inside the image field: such clips are flagged in the manifest."""
    import cv2

    ds = pydicom.dcmread(shipped_file("examples_ybr_color.dcm"))
    frames = ds.pixel_array.copy()
    for f in frames:  # a calliper label in the middle of the sector, the same on every frame
        cv2.putText(f, "LVOT 2.1cm", (110, 140), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    ds.PixelData = frames.tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    src = tmp_path / "in" / "marked.dcm"
    src.parent.mkdir()
    ds.save_as(src, enforce_file_format=True)
    clean = write_variant("examples_ybr_color.dcm", tmp_path / "in2" / "clean.dcm", "PAT9")
    ingest([src, clean], tmp_path / "out", key_path, progress=False)
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False).drop_duplicates("source_sha256")
    flags = dict(zip(m.patient_id_source + m.source_sha256, m.overlay_in_cone))
    from echoavc.dicom.read import sha256_bytes

    assert flags["PatientID" + sha256_bytes(src.read_bytes())] == expected
    assert flags["PatientID" + sha256_bytes(clean.read_bytes())] == ""


def test_follow_up_exams_keep_their_interval_and_no_original_date_survives(tmp_path, key_path):
    """Two exams of one synthetic patient a year apart: shifted dates (manifest and DICOM) keep the interval to
    the day, the exam order follows them even when the later exam is ingested first, and no original date, in
    any spelling, is in any output byte (frames, QC pictures, manifest, state records, DICOM)."""
    from echoavc.synth.cohort import make_cohort

    cohort = make_cohort(tmp_path / "cohort", 1, seed=8, frames_per_exam=2, exams_per_patient=2, workers=1,
                         progress=False)
    labels = pd.read_csv(cohort.labels, dtype=str).sort_values("study_date")
    original = pd.to_datetime(labels.study_date, format="%Y%m%d").tolist()
    interval = (original[1] - original[0]).days
    assert 330 <= interval <= 400  # about a year apart
    dicom = tmp_path / "cohort" / "dicom"
    later = [p for p in dicom.rglob("*.dcm") if pydicom.dcmread(p).StudyDate == labels.study_date.iloc[1]]
    out = tmp_path / "out"
    args = ["--out", str(out), "--key", str(key_path), "--qc", "--write-dicom"]
    first = runner.invoke(app, ["ingest", *map(str, later), *args])
    assert first.exit_code == 0, first.output
    assert set(pd.read_csv(out / "manifest.csv", dtype=str).exam_order) == {"1"}  # alone so far: the first
    result = runner.invoke(app, ["ingest", str(dicom), *args])
    assert result.exit_code == 0, result.output

    m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    exams = m.groupby("study_id").agg(patient_id=("patient_id", "first"), study_date=("study_date", "first"),
                                      exam_order=("exam_order", "first")).sort_values("study_date")
    assert exams.patient_id.nunique() == 1 and len(exams) == 2
    shifted = pd.to_datetime(exams.study_date, format="%Y-%m-%d").tolist()
    assert (shifted[1] - shifted[0]).days == interval
    assert shifted[0] != original[0]
    assert exams.exam_order.tolist() == ["1", "2"]
    # the DICOM written for each exam carries the manifest's shifted date, and its other dates moved alike
    for study_id, exam in exams.iterrows():
        for path in (out / "dicom" / study_id).glob("*.dcm"):
            ds = pydicom.dcmread(path)
            assert ds.StudyDate == exam.study_date.replace("-", "") == ds.SeriesDate == ds.ContentDate
            assert ds.AcquisitionDateTime[:8] == ds.StudyDate and ds.PatientBirthDate == ""

    originals = set()
    for path in dicom.rglob("*.dcm"):
        pydicom.dcmread(path).walk(lambda d, e: originals.add(str(e.value)[:8])
                                   if e.VR in ("DA", "DT") and e.value else None)
    assert set(labels.study_date) <= originals and len(originals) >= 3  # study dates and a birth date
    # the key is new each run, so a shift can equal the exams' interval (about 1 run in 3300): the later exam's
    # shifted date then falls on the earlier one's original date. That is a shifted date, not an original surviving.
    coincident = {d.strftime("%Y%m%d") for d in shifted} & originals
    spellings = set()
    for v in originals - coincident:
        y, mo, d = v[:4], v[4:6], v[6:8]
        spellings |= {v, f"{y}-{mo}-{d}", f"{d}/{mo}/{y}", f"{y}.{mo}.{d}", f"{mo}/{d}/{y}"}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".png", ".csv", ".dcm", ".json"} and any("qc" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        for s in spellings:
            assert s.encode() not in data, f"{s} in {path.relative_to(out)}"
    for s in spellings:
        assert s not in result.output
