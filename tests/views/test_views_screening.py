"""predict with a view model: clips of another view are listed with their reason, never dropped; M-mode and
spectral Doppler files are never screened; a bundle without a view model screens as before."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from echoavc.bundle import load_bundle, save_bundle
from echoavc.predict import FRAME_COLUMNS, predict
from echoavc.settings import IngestSettings, ScreeningSettings
from echoavc.views.classes import VIEW_CLASSES
from echoavc.views.model import META_FILE, MODEL_FILE, MODEL_FORMAT, build

from us_files import region, sector_frames, us_file

BACKBONE, SIZE = "mobilenetv3_small_050", 64


def fixed_view_model(folder: Path, view: str) -> Path:
    """A real view network whose head always answers ``view`` (zero weights, one large bias)."""
    import torch
    from safetensors.torch import save_file

    model = build(BACKBONE)
    head = model.get_classifier()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-8.0)
        head.bias[VIEW_CLASSES.index(view)] = 8.0
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / MODEL_FILE))
    (folder / META_FILE).write_text(json.dumps({"format": MODEL_FORMAT, "backbone": BACKBONE, "input_size": SIZE,
                                                "classes": list(VIEW_CLASSES), "frames_per_clip": 4,
                                                "validation": None}))
    return folder


@pytest.fixture(scope="module")
def bundles(tiny_detector, smoke_classifier, tmp_path_factory):
    root = tmp_path_factory.mktemp("view_bundles")
    common = dict(detector_weights=tiny_detector.result.best, classifier_dir=smoke_classifier.model_dir,
                  ingest=IngestSettings(), screening=ScreeningSettings(valve_conf=0.0, decide_conf=0.0),
                  exam_threshold=0.5)
    out = {"none": save_bundle(root / "none", **common)}
    for view in ("plax", "psax_av"):
        out[view] = save_bundle(root / view, views_dir=fixed_view_model(root / f"vm-{view}", view), **common)
    return out


@pytest.fixture(scope="module")
def inputs(synthetic_study, tmp_path_factory):
    """Two cohort files and an M-mode-only file (its regions say so) in one folder."""
    folder = tmp_path_factory.mktemp("view_inputs")
    dicoms = sorted((Path(synthetic_study.cohort.frames).parent / "dicom").rglob("*.dcm"))[:2]
    for i, p in enumerate(dicoms):
        shutil.copy(p, folder / f"clip{i}.dcm")
    frames = sector_frames((240, 320), 3)
    (folder / "mmode.dcm").write_bytes(us_file(frames, [region(0, 0, 319, 239, 2, 1)], study="9.9.9"))
    return folder


def test_old_bundle_loads_and_has_no_view_model(bundles):
    b = load_bundle(bundles["none"])
    assert not b.has_views and b.view_model() is None and "views" not in b.card()
    with_views = load_bundle(bundles["plax"])
    assert with_views.has_views and "views/model.onnx" in with_views.meta["files"]
    assert with_views.view_model("onnx").classes == VIEW_CLASSES


def test_other_view_clips_are_listed_with_their_reason(bundles, inputs, tmp_path):
    rep = predict([inputs], bundles["plax"], tmp_path / "out", progress=False, overlays="none")
    frames = pd.read_csv(tmp_path / "out" / "frames.csv", dtype=str, keep_default_na=False)
    clips = pd.read_csv(tmp_path / "out" / "clips.csv", dtype=str, keep_default_na=False)
    # every frame of every file has its row: nothing dropped
    expected = sum(int(pydicom.dcmread(p, stop_before_pixels=True).get("NumberOfFrames", 1))
                   for p in inputs.glob("*.dcm"))
    assert len(frames) == expected and len(clips) == 3
    assert set(frames["source"].map(lambda s: Path(s).name)) == {"clip0.dcm", "clip1.dcm", "mmode.dcm"}
    by_file = {Path(s).name: g for s, g in frames.groupby("source")}
    for name in ("clip0.dcm", "clip1.dcm"):
        g = by_file[name]
        assert set(g["status"]) == {"other_view"} and set(g["view"]) == {"plax"}
        assert (g["valve_score"] == "").all()  # the detector never ran on them
    assert set(by_file["mmode.dcm"]["status"]) == {"m_mode"} and set(by_file["mmode.dcm"]["view"]) == {"other"}
    assert set(clips["screened"]) == {"no"}
    reasons = dict(zip(clips["source"].map(lambda s: Path(s).name), clips["reason"]))
    assert reasons["mmode.dcm"] == "m-mode" and reasons["clip0.dcm"].startswith("view plax")
    assert dict(zip(clips["source"].map(lambda s: Path(s).name), clips["view_source"]))["mmode.dcm"] == "header"
    assert all(e["decision"] == "undetermined" and e["reason"].startswith("no clip taken as psax_av")
               for e in rep.exams)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Clips not screened" in html and "m-mode" in html and "view plax" in html


def test_psax_av_clips_are_screened_as_without_a_view_model(bundles, inputs, tmp_path):
    got = {}
    for name in ("none", "psax_av"):
        predict([inputs], bundles[name], tmp_path / name, progress=False, overlays="none")
        f = pd.read_csv(tmp_path / name / "frames.csv", dtype=str, keep_default_na=False)
        got[name] = f
    a, b = got["none"], got["psax_av"]
    # the M-mode file's view comes from its header, so the view columns are there (after the grade's)
    assert list(a.columns)[:len(FRAME_COLUMNS)] == FRAME_COLUMNS and list(a.columns)[-2:] == ["view", "view_probability"]
    two_d = ~a["source"].str.endswith("mmode.dcm")
    cols = ["source", "frame_index", "status", "valve_score", "probability", "decision"]
    assert a.loc[two_d, cols].reset_index(drop=True).equals(b.loc[two_d, cols].reset_index(drop=True))
    assert set(b.loc[two_d, "view"]) == {"psax_av"} and set(a.loc[two_d, "view"]) == {""}
    assert "decided" in set(b["status"])


def test_a_bundle_without_views_writes_what_it_always_wrote(bundles, inputs, tmp_path):
    only_2d = tmp_path / "in"
    only_2d.mkdir()
    for p in inputs.glob("clip*.dcm"):
        shutil.copy(p, only_2d / p.name)
    predict([only_2d], bundles["none"], tmp_path / "out", progress=False, overlays="none")
    header = (tmp_path / "out" / "frames.csv").read_text().splitlines()[0].split(",")
    assert header[:len(FRAME_COLUMNS)] == FRAME_COLUMNS and "view" not in header
    assert not (tmp_path / "out" / "clips.csv").exists()
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "clips" not in doc and all("view" not in f for f in doc["frames"])


def test_train_stores_a_given_view_model_and_refuses_what_is_not_one(tmp_path):
    from echoavc.errors import EchoAVCError
    from echoavc.train import _view_stage

    vm = fixed_view_model(tmp_path / "vm", "a4c")
    assert _view_stage(None, None, tmp_path, None, vm, lambda m: None, False) == vm
    assert _view_stage(None, None, tmp_path, None, None, lambda m: None, False) is None  # no view stage: as before
    with pytest.raises(EchoAVCError, match="not a view model"):
        _view_stage(None, None, tmp_path, None, tmp_path, lambda m: None, False)
