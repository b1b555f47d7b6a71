"""The cohort on disk: DICOM files, ground-truth tables, determinism, the valve box."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from pydicom import dcmread

from echoavc.errors import EchoAVCError
from echoavc.settings import SynthSettings
from echoavc.synth import anatomy as A
from echoavc.synth import cohort as C
from echoavc.synth import dicom as D
from echoavc.synth import scanner as S
from testkit import need_tool


def _decode(path):
    ds = dcmread(path)
    arr = ds.pixel_array
    return ds, (arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None])


def test_tables_and_files_agree(cohort, frames):
    assert list(frames.columns) == C.FRAME_COLUMNS
    assert frames.groupby(["source_sha256", "frame_index"]).size().max() == 1
    for file, rows in frames.groupby("file"):
        data = (cohort.out_dir / file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rows.source_sha256.iloc[0]
        ds, arr = _decode(cohort.out_dir / file)
        assert arr.shape[0] == len(rows) == rows.number_of_frames.iloc[0]
        assert sorted(rows.frame_index) == list(range(len(rows)))
        assert (ds.Rows, ds.Columns) == (rows["rows"].iloc[0], rows["columns"].iloc[0])
        assert str(ds.file_meta.TransferSyntaxUID) == rows.transfer_syntax.iloc[0]
        assert ds.PhotometricInterpretation == rows.photometric.iloc[0]
        assert ds.PatientID == rows.patient_id.iloc[0] and ds.AccessionNumber == rows.exam_id.iloc[0]
        assert ds.StudyInstanceUID == rows.study_instance_uid.iloc[0]
        assert ("SequenceOfUltrasoundRegions" in ds) == bool(rows.has_us_regions.iloc[0])
    assert not list(cohort.out_dir.rglob("*.tmp"))


def test_views_boxes_and_nodules(frames):
    assert set(frames.view) == set(A.VIEWS)
    has_box = frames.valve_x1.notna()
    assert not has_box[~frames.view.isin(A.VALVE_VIEWS)].any()
    assert has_box[frames.view == "psax_av"].mean() > 0.9
    assert set(frames.valve_phase) == {"open", "closed"}
    b = frames[has_box]
    assert ((b.valve_x1 >= 0) & (b.valve_y1 >= 0) & (b.valve_x2 <= b["columns"]) & (b.valve_y2 <= b["rows"])).all()
    assert ((b.valve_x2 > b.valve_x1 + 10) & (b.valve_y2 > b.valve_y1 + 10)).all()
    n_nod = 0
    for r in b.itertuples():
        for x, y, rad in json.loads(r.nodules):
            n_nod += 1
            assert r.valve_x1 <= x <= r.valve_x2 and r.valve_y1 <= y <= r.valve_y2
        if r.grade == 0:
            assert json.loads(r.nodules) == []
    assert n_nod > 0


def test_labels_match_frames_and_prevalence(cohort, frames):
    labels = pd.read_csv(cohort.labels)
    assert list(labels.columns) == C.LABEL_COLUMNS
    assert labels.calcified.sum() == round(0.36 * 8)
    assert ((labels.grade > 0) == (labels.calcified == 1)).all()
    merged = frames.merge(labels, on="exam_id", suffixes=("", "_exam"))
    assert len(merged) == len(frames)
    assert (merged.grade == merged.grade_exam).all()


def test_maxqda_rectangles(cohort, frames):
    mq = pd.read_csv(cohort.maxqda)
    assert list(mq.columns) == C.MAXQDA_COLUMNS == ["image", "code", "x", "y", "width", "height", "coordinate_space"]
    av = frames[(frames.view == "psax_av") & frames.valve_x1.notna()]
    assert len(mq) == len(av)
    key = av.source_sha256 + ":" + av.frame_index.astype(str)
    assert set(mq.image) == set(key)
    m = mq.merge(av.assign(image=key), on="image")
    assert np.allclose(m.x, m.valve_x1) and np.allclose(m.x + m.width, m.valve_x2, atol=0.11)
    assert (mq.coordinate_space == "original").all()


def test_encodings_and_headers(cohort, frames):
    files = frames.drop_duplicates("file")
    assert files.encoding.nunique() >= 4
    check_layouts(files.layout)
    assert 0 < files.has_us_regions.mean() < 1
    ds = dcmread(cohort.out_dir / files.file.iloc[0])
    assert "^" in str(ds.PatientName) and ds.PatientBirthDate and ds.InstitutionName
    assert ds.BurnedInAnnotation == "YES" and ds.Modality == "US"


LAYOUTS = {"compact", "console", "cart"}  # echoavc.synth.screen.LAYOUTS, spelled out so a renamed one shows


def check_layouts(layout: pd.Series) -> None:
    """Several screen layouts occur, each one the generator knows (the old ``set(...) == ALL or nunique >= 2``
    held for any two values, known or not)."""
    assert layout.nunique() >= 2, layout.value_counts().to_dict()
    assert set(layout) <= LAYOUTS, set(layout) - LAYOUTS


@pytest.mark.parametrize("broken", [["compact"] * 4, ["compact", "console", "tablet", "compact"]])
def test_layout_check_rejects_one_layout_or_an_unknown_one(broken):
    with pytest.raises(AssertionError):
        check_layouts(pd.Series(broken))


@pytest.mark.parametrize("encoding", sorted(D.ENCODINGS))
def test_every_encoding_round_trips(encoding, tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (2, 48, 64, 1), dtype=np.uint8), 3, axis=3)
    frames[:, 5:15, 5:30] = (40, 210, 90)  # a coloured overlay (ECG trace)
    frames = np.ascontiguousarray(frames)
    hdr = D.Header("DOE^JANE", "X1", "19500101", "F", "1.2.3", "1.2.3.4", "1.2.3.4.5", "20200101", "101010",
                   "A1", "1", "Inst", "REF^A", "OP^B", "Vendor", "Model", "ST01", 1, 1, 33.3, 60, "101010")
    region = D.Region(2, 2, 60, 45, 0.05, 30, -10, 2500)
    ds = D.build_dataset(frames, encoding, hdr, region)
    sha = D.write_atomic(tmp_path / "f.dcm", D.encode(ds))
    assert hashlib.sha256((tmp_path / "f.dcm").read_bytes()).hexdigest() == sha
    back = dcmread(tmp_path / "f.dcm").pixel_array
    syntax, photometric = D.ENCODINGS[encoding]
    want = np.stack([D.to_gray(f) for f in frames]) if photometric == "MONOCHROME2" else frames
    assert back.shape == want.shape
    err = np.abs(back.astype(int) - want.astype(int))
    if encoding.startswith("jpeg"):
        assert err.mean() < 12  # lossy, on pure noise (hardest case)
    else:
        assert err.max() == 0


def test_deterministic_by_seed(tmp_path):
    a = C.make_cohort(tmp_path / "a", 2, seed=4, frames_per_exam=3, workers=1, progress=False)
    b = C.make_cohort(tmp_path / "b", 2, seed=4, frames_per_exam=3, workers=2, progress=False)
    c = C.make_cohort(tmp_path / "c", 2, seed=5, frames_per_exam=3, workers=1, progress=False)
    fa, fb, fc = (pd.read_csv(p.frames) for p in (a, b, c))
    pd.testing.assert_frame_equal(fa, fb)
    assert a.labels.read_text() == b.labels.read_text()
    assert set(fa.source_sha256).isdisjoint(fc.source_sha256)


def test_follow_up_exams_progress(tmp_path):
    s = SynthSettings(exams_per_patient=3, progression_probability=1.0, frames_per_exam=2, prevalence=1.0)
    rows, labels = C.make_patient((str(tmp_path), 3, 0, 1, s))
    assert [l["grade"] for l in labels] == [1, 2, 3]
    assert len({l["exam_id"] for l in labels}) == 3 and len({l["study_date"] for l in labels}) == 3
    assert sorted({r["exam_id"] for r in rows}) == sorted(l["exam_id"] for l in labels)


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(EchoAVCError):
        C.make_cohort(tmp_path, 2, prevalence=1.5, progress=False)
    with pytest.raises(EchoAVCError):
        C.make_cohort(tmp_path, 0, progress=False)


def _render_pair(seed, view="psax_av", zoomed=False):
    """The same frame twice (same scatterers and noise): with the valve, and with it replaced by blood."""
    rng = np.random.default_rng(seed)
    heart = A.Heart.sample(rng, int(rng.integers(0, 4)))
    plan = C.ClipPlan(view, 1, "raw_mono", str(rng.choice(["compact", "console", "cart"])), False, zoomed, 1)
    acq = C._acquisition(rng, view)
    pose = C._pose(rng, view, heart, acq.depth_mm)
    from echoavc.synth import screen as V

    zoom = (pose.z_mm - 30, pose.z_mm + 35, pose.x_mm) if zoomed else None
    disp = V.sector_display(V.LAYOUTS[plan.layout], acq.depth_mm, acq.sector_deg / 2, zoom)
    grid = S.polar_grid(acq)
    rd = S.envelope_ranges(grid, acq)
    conv = S.ScanConverter(rd, grid.th_rad, disp)
    phase = float(rng.uniform())
    scene = A.render(view, heart, pose, phase, acq.depth_mm, acq.sector_deg / 2, np.random.default_rng(0))
    box = C.valve_box(scene, grid, acq, conv, disp, pose)
    imgs = []
    for remove in (False, True):
        echo = scene.echo.copy()
        if remove:
            echo[scene.valve > 0] = A.BLOOD
        e = S.sample_polar(echo, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        a = S.sample_polar(scene.atten, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        beam = S.beamform(e, a, grid, acq, np.random.default_rng(99))
        imgs.append(conv(S.log_compress(beam.envelope, acq)))
    return box, np.abs(imgs[0] - imgs[1])


@pytest.mark.parametrize("seed,view,zoomed", [(s, "psax_av", s % 3 == 0) for s in range(6)] + [(7, "plax", False)])
def test_ground_truth_box_encloses_the_rendered_valve(seed, view, zoomed):
    box, diff = _render_pair(seed, view, zoomed)
    assert box is not None
    x1, y1, x2, y2 = (int(math.floor(box[0])), int(math.floor(box[1])), int(math.ceil(box[2])), int(math.ceil(box[3])))
    inside = diff[y1:y2, x1:x2].sum()
    assert diff.sum() > 0
    assert inside / diff.sum() > 0.97, inside / diff.sum()
    # and the box is tight: not much larger than the region where the valve changes the image
    ys, xs = np.nonzero(diff > 10)
    signal_area = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    assert (x2 - x1) * (y2 - y1) < 2.0 * signal_area


def test_dciodvfy_finds_no_errors(cohort, frames):
    dciodvfy = need_tool("dciodvfy")  # Debian's dicom3tools; .ci/run installs it and requires it
    files = frames.drop_duplicates(["encoding", "number_of_frames", "has_us_regions"]).file
    for f in files:
        res = subprocess.run([dciodvfy, str(cohort.out_dir / f)], capture_output=True, text=True)
        errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (f, errors)


def test_sop_instance_uid_is_the_planned_one(cohort, frames):
    """Every file keeps the UID written in the frame table (RLE encoding must not replace it)."""
    for r in frames.drop_duplicates("file").itertuples():
        assert dcmread(cohort.out_dir / r.file, stop_before_pixels=True).SOPInstanceUID == r.sop_instance_uid
