"""``echoavc predict``: exams in, per-frame and per-exam results, overlays and the HTML report out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from echoavc.bundle import load_bundle
from echoavc.predict import predict
from echoavc.screening import (ClipResult, FrameResult, exam_results, frame_label, located_frames, nearest_located,
                               read_input)
from echoavc.report import frame_overlay
from testkit import check_html, shipped_file


def _frame(exam, src, i, status="decided", p=None):
    box = [1.0, 2.0, 30.0, 40.0] if status in ("decided", "low_confidence") else None
    return FrameResult(exam, src, i, status, 0.9 if box else None, box, p, "")


# ---------------------------------------------------------------- exam arithmetic (no models)


def test_exam_is_the_mean_of_decided_frames_with_its_clips_spread_and_agreement():
    a = ClipResult("a.dcm", "s1", "E1", [_frame("E1", "a.dcm", 0, p=0.2), _frame("E1", "a.dcm", 1, p=0.4),
                                         _frame("E1", "a.dcm", 2, "no_valve")], best=1)
    b = ClipResult("b.dcm", "s2", "E1", [_frame("E1", "b.dcm", 0, p=0.9),
                                         _frame("E1", "b.dcm", 1, "low_confidence", p=0.99)], best=0)
    (e,) = exam_results([a, b], threshold=0.5)
    assert e["n_frames"] == 5 and e["n_decided"] == 3
    assert e["probability"] == pytest.approx(0.5)  # low-confidence frames do not count
    assert e["decision"] == "calcified"
    # what the decision rests on: two clips (means 0.3 and 0.9) that disagree, three decided frames
    assert (e["n_clips"], e["n_clips_decided"]) == (2, 2)
    assert e["clip_probabilities"] == pytest.approx([0.3, 0.9])
    assert e["spread"] == pytest.approx([0.3, 0.9]) and e["spread_of"] == "clips"
    assert (e["clips_agreeing"], e["frames_agreeing"]) == ("1/2", "1/3")
    assert "interval" not in e  # a range over two clips is not a 95% interval, and is not called one
    assert e["driving_frame"] == {"source": "b.dcm", "frame_index": 0, "probability": 0.9}
    (e2,) = exam_results([a, b], threshold=0.51)
    assert e2["decision"] == "not calcified"
    (m,) = exam_results([a, b], threshold=0.5, aggregate="max")
    assert m["probability"] == pytest.approx(0.9)


def test_exams_without_decided_frames_are_undetermined_and_say_why():
    cone = ClipResult("c.dcm", "s", "E2", [_frame("E2", "c.dcm", 0, "no_cone")])
    other = ClipResult("d.dcm", "s", "E3", [_frame("E3", "d.dcm", 0, "no_valve"),
                                            _frame("E3", "d.dcm", 1, "low_confidence", p=0.7)])
    e2, e3 = exam_results([cone, other], threshold=0.5)
    assert (e2["decision"], e2["probability"], e2["spread"]) == ("undetermined", None, None)
    assert "cone" in e2["reason"] and "valve" in e3["reason"]


def test_one_decided_frame_has_no_spread_and_says_so():
    (e,) = exam_results([ClipResult("a", "s", "E", [_frame("E", "a", 0, p=0.7)], best=0)], 0.5)
    assert e["spread"] == [0.7, 0.7] and e["spread_of"] == "frames" and "one decided frame" in e["reason"]
    assert (e["clips_agreeing"], e["frames_agreeing"]) == ("1/1", "1/1")


def test_valve_located_on_a_few_frames_is_given_to_the_nearest_frames():
    kept = list(range(0, 20, 2))
    loc = located_frames(kept, 3)
    assert loc == [0, 8, 18] and located_frames(kept, 0) == kept and located_frames(kept, 50) == kept
    assert [loc[i] for i in nearest_located(kept, loc)] == [0, 0, 0, 8, 8, 8, 8, 18, 18, 18]


# ---------------------------------------------------------------- end to end with a trained bundle


@pytest.fixture(scope="module")
def screened(screening_bundle, tmp_path_factory):
    """Held-out patients' DICOM files, a corrupt DICOM and a text file, screened once."""
    root = tmp_path_factory.mktemp("screened")
    inputs = root / "inputs"
    for f in screening_bundle.test_sources:
        rel = f.relative_to(screening_bundle.cohort_dir / "dicom")
        (inputs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, inputs / rel)
    good = screening_bundle.test_sources[0].read_bytes()
    (inputs / "corrupt.dcm").write_bytes(good[: len(good) // 3])
    (inputs / "notes.txt").write_text("not an image\n")
    rep = predict([inputs], screening_bundle.bundle, root / "out", settings=screening_bundle.settings, progress=False)
    return root, inputs, rep


def test_bad_files_are_reported_and_skipped(screened, screening_bundle):
    root, inputs, rep = screened
    failed = {Path(f["source"]).name: f["reason"] for f in rep.failures}
    assert set(failed) == {"corrupt.dcm", "notes.txt"}, failed
    assert all(r for r in failed.values())
    assert {Path(f["source"]).name for f in rep.frames} == {p.name for p in screening_bundle.test_sources}
    csv = pd.read_csv(root / "out" / "failures.csv")
    assert sorted(Path(s).name for s in csv["source"]) == ["corrupt.dcm", "notes.txt"]


def test_every_frame_of_every_good_file_goes_the_whole_way(screened, screening_bundle):
    root, inputs, rep = screened
    n_truth = 0
    for f in screening_bundle.test_sources:
        rel = f.relative_to(screening_bundle.cohort_dir).as_posix()
        n_truth += sum(1 for (name, _) in screening_bundle.views if name == rel)
    assert len(rep.frames) == n_truth
    thr = _thresholds(screening_bundle)["frame"]
    for f in rep.frames:
        assert f["status"] == "decided" and 0.0 <= f["probability"] <= 1.0 and len(f["valve_box"]) == 4
        assert f["decision"] == ("calcified" if f["probability"] >= thr else "not calcified")
    assert len({round(f["probability"], 6) for f in rep.frames}) > 1  # the classifier really ran per frame


class _FixedDetector:
    """Stands in for the detector where the status rules are under test: top boxes with chosen scores."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)

    def top(self, images, conf=0.0, batch_size=None):
        from echoavc.detector.predict import TopBoxes

        s = np.where(self.scores >= conf, self.scores, np.nan)
        boxes = np.where(np.isfinite(s)[:, None], np.array([[250.0, 250.0, 390.0, 390.0]]), np.nan)
        return TopBoxes(boxes, s, np.isfinite(s))


def test_frame_status_follows_the_valve_score(screening_bundle):
    from dataclasses import replace

    from echoavc.bundle import load_bundle
    from echoavc.screening import Screener

    b = load_bundle(screening_bundle.bundle)
    sc = Screener(b, "onnx", replace(b.screening, valve_conf=0.25, decide_conf=0.5))
    sc.detector = _FixedDetector([0.1, 0.3, 0.49, 0.5, 0.9, np.nan])
    images = [np.full((640, 640), 40 * i, np.uint8) for i in range(6)]
    res = sc.screen(images, list(range(6)), "E1", "x.dcm")
    assert [r.status for r in res] == ["no_valve", "low_confidence", "low_confidence", "decided", "decided",
                                       "no_valve"]
    assert [r.probability is None for r in res] == [True, False, False, False, False, True]
    assert [bool(r.decision) for r in res] == [False, False, False, True, True, False]
    # locating the valve on two frames first: when they agree, the others take the box of the nearest one
    sc.settings = replace(sc.settings, detect_frames=2)
    sc.detector = _PerFrameDetector({i: (0.9, 250.0) for i in range(6)})
    res = sc.screen(images, list(range(6)), "E1", "x.dcm")
    assert sc.detector.located == [0, 5]
    assert [r.status for r in res] == ["decided"] * 6


class _PerFrameDetector:
    """Stands in for the detector: per frame (told by its fill value, 40 * index) a score and a box's left edge;
    records which frames it was asked about."""

    def __init__(self, frames):
        self.frames, self.located = frames, []

    def top(self, images, conf=0.0, batch_size=None):
        from echoavc.detector.predict import TopBoxes

        idx = [int(im[0, 0]) // 40 for im in images]
        self.located += idx
        s = np.array([self.frames[i][0] if self.frames[i][0] >= conf else np.nan for i in idx])
        boxes = np.array([[self.frames[i][1], 250.0, self.frames[i][1] + 140, 390.0] for i in idx])
        boxes[~np.isfinite(s)] = np.nan
        return TopBoxes(boxes, s, np.isfinite(s))


def test_valve_tracking_locates_again_where_the_box_drifts():
    """With detect_frames, frames between two located frames that disagree (score across decide_conf, or boxes
    apart) are located too, so the tracked boxes and scores are those of locating every frame here."""
    from echoavc.screening import Screener
    from echoavc.settings import ScreeningSettings

    sc = Screener.__new__(Screener)  # boxes() needs only the settings and the detector
    sc.settings = ScreeningSettings(valve_conf=0.25, decide_conf=0.5, detect_frames=2, track_iou=0.85)
    images = [np.full((8, 8), 40 * i, np.uint8) for i in range(6)]
    # the score falls below decide_conf from frame 3 on: found by halving between frames 0 and 5
    sc.detector = _PerFrameDetector({i: (0.9 if i < 3 else 0.3, 250.0) for i in range(6)})
    _, scores = sc.boxes(images, list(range(6)))
    assert scores.tolist() == [0.9] * 3 + [0.3] * 3
    assert sorted(sc.detector.located) == [0, 2, 3, 5]
    # the box moves 100 px from frame 4 on (IoU 0.17): located again until the step is pinned down
    sc.detector = _PerFrameDetector({i: (0.9, 250.0 if i < 4 else 350.0) for i in range(6)})
    boxes, _ = sc.boxes(images, list(range(6)))
    assert boxes[:, 0].tolist() == [250.0] * 4 + [350.0] * 2
    assert sorted(sc.detector.located) == [0, 2, 3, 4, 5]
    # a valve in one located frame and none in the other: located between them as well
    sc.detector = _PerFrameDetector({i: (0.9 if i < 2 else 0.1, 250.0) for i in range(6)})
    _, scores = sc.boxes(images, list(range(6)))
    assert np.isfinite(scores).tolist() == [True] * 2 + [False] * 4
    # no drift: two frames located, the rest follow
    sc.detector = _PerFrameDetector({i: (0.9, 250.0 + i) for i in range(6)})
    sc.boxes(images, list(range(6)))
    assert sorted(sc.detector.located) == [0, 5]


def _thresholds(screening_bundle):
    return json.loads((screening_bundle.bundle / "bundle.json").read_text())["thresholds"]


def test_exam_decisions_follow_the_validated_exam_threshold(screened, screening_bundle):
    root, inputs, rep = screened
    thr = _thresholds(screening_bundle)["exam"]
    truth = pd.read_csv(screening_bundle.study.cohort.labels, dtype=str)
    from echoavc.screening import exam_id_of

    ids = {exam_id_of(u) for u in truth["study_instance_uid"]}
    assert rep.exams and all(e["exam_id"] in ids for e in rep.exams)
    for e in rep.exams:
        assert e["threshold"] == pytest.approx(thr)
        if e["probability"] is not None:
            assert e["decision"] == ("calcified" if e["probability"] >= thr else "not calcified")
            assert e["spread"][0] <= e["probability"] <= e["spread"][1]
            assert e["n_clips_decided"] <= e["n_clips"] and e["n_decided"] <= e["n_frames"]
            assert e["driving_frame"]["probability"] >= e["probability"] - 1e-9
    ex = pd.read_csv(root / "out" / "exams.csv")
    assert list(ex["exam_id"]) == [e["exam_id"] for e in rep.exams]
    doc = json.loads((root / "out" / "results.json").read_text())
    assert len(doc["frames"]) == len(rep.frames) and "Research use only" in doc["model"]["intended_use"]


def test_report_is_valid_html_and_every_link_resolves(screened):
    root, _, rep = screened
    out = root / "out"
    page = check_html((out / "report.html").read_text())
    assert page.links
    for link in page.links:
        if not link.startswith(("data:", "#")):
            assert (out / unquote(link)).is_file(), link
    text = " ".join(page.text)
    assert "Research use only" in text and all(e["exam_id"] in text for e in rep.exams)
    # one overlay per clip, and it shows the cone, the box and the label
    assert len(list((out / "overlays").rglob("*.png"))) == len({f["source"] for f in rep.frames})


def _square_heat(classifier, image, box):
    """A stand-in Grad-CAM (the smoke classifier's own is too faint to see): 0.9 over the box."""
    cam = np.zeros(image.shape[:2], np.float32)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cam[y1:y2, x1:x2] = 0.9
    return cam


def test_grad_cam_on_each_clips_best_frame_drawn_while_screening(screened, screening_bundle, tmp_path, monkeypatch):
    import echoavc.screening.clips

    root, inputs, _ = screened
    monkeypatch.setattr(echoavc.screening.clips, "heat_map", _square_heat)
    out = tmp_path / "out"
    rep = predict([inputs], screening_bundle.bundle, out, settings=screening_bundle.settings, overlays="all",
                  progress=False)
    # each clip's highest-probability decided frame carries the heat map; an exam's driving frame is one of them
    best: dict = {}
    for f in rep.frames:
        if f["status"] == "decided" and (f["source"] not in best or f["probability"] > best[f["source"]]["probability"]):
            best[f["source"]] = f
    heated = {f["overlay"] for f in best.values()}
    assert heated and all(heated)
    for e in rep.exams:
        assert e["heat_map"] == (e["driving_frame"] is not None)
        if e["driving_frame"]:
            d = e["driving_frame"]
            f = next(f for f in rep.frames if f["source"] == d["source"] and f["frame_index"] == d["frame_index"])
            assert e["overlay"] == f["overlay"] and f["overlay"] in heated and (out / f["overlay"]).is_file()
    # drawn while the clips were screened: no file was read a second time for its heat map
    assert json.loads((out / ".state" / "heat_maps.json").read_text())["done"] == {}
    # the pictures themselves, against the same frame drawn by hand: the best frames with the heat map, every
    # other frame's overlay (--overlays all) plain
    bundle = load_bundle(screening_bundle.bundle)
    plain = 0
    for f in rep.frames:
        if not f["overlay"]:
            continue
        prepare, _, _ = read_input(Path(f["source"]).read_bytes(), f["source"], bundle.ingest_settings())
        prep = prepare()
        image = prep.standard(next(prep.frames([f["frame_index"]]))[1])
        rec = FrameResult(**{k: f[k] for k in ("exam_id", "source", "frame_index", "status", "valve_score",
                                                "valve_box", "probability", "decision")})
        cam = _square_heat(None, image, rec.valve_box) if f["overlay"] in heated else None
        want = frame_overlay(image, cone_outline=prep.standard_outline(), box=rec.valve_box,
                             label=frame_label(rec), decision=rec.decision or None, cam=cam)
        drawn = cv2.cvtColor(cv2.imread(str(out / f["overlay"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(drawn, want), f["overlay"]
        plain += cam is None
    assert plain >= 1


def test_rerun_resumes_and_gives_identical_outputs(screened, screening_bundle):
    root, inputs, rep = screened
    before = {n: (root / "out" / n).read_bytes() for n in ("frames.csv", "exams.csv", "failures.csv")}
    pictures = {p: p.stat().st_mtime_ns for p in (root / "out" / "overlays").rglob("*.png")}
    again = predict([inputs], screening_bundle.bundle, root / "out", settings=screening_bundle.settings,
                    progress=False)
    assert again.resumed == len(screening_bundle.test_sources)
    assert again.done == 2  # only the failures are tried again
    assert {n: (root / "out" / n).read_bytes() for n in before} == before
    assert {p: p.stat().st_mtime_ns for p in pictures} == pictures  # heat maps are not drawn again
    assert all(e["heat_map"] for e in again.exams if e["driving_frame"])


def test_two_workers_give_the_same_results(screened, screening_bundle, tmp_path):
    root, inputs, _ = screened
    predict([inputs], screening_bundle.bundle, tmp_path / "w2", settings=screening_bundle.settings, workers=2,
            threads=2, progress=False)
    for n in ("frames.csv", "exams.csv", "failures.csv"):
        assert (tmp_path / "w2" / n).read_bytes() == (root / "out" / n).read_bytes(), n
    # the heat maps too: drawn in the workers, the same pictures as in one process
    heat = json.loads((root / "out" / "results.json").read_text())["exams"]
    drawn = [e["overlay"] for e in heat if e.get("heat_map")]
    assert drawn
    for rel in drawn:
        assert (tmp_path / "w2" / rel).read_bytes() == (root / "out" / rel).read_bytes(), rel


def test_an_onnx_worker_starts_and_screens_without_torch(screening_bundle, tmp_path):
    """A screening worker on the ONNX backend never imports torch (1.3 s of every worker's start on 2 cores)."""
    import subprocess
    import sys

    source = next(iter(screening_bundle.test_sources))
    code = ("import sys, json; from dataclasses import asdict; from echoavc.bundle import load_bundle; "
            "from echoavc.predict import _worker_init, _worker_run; "
            f"b = load_bundle({str(screening_bundle.bundle)!r}); "
            "_worker_init(str(b.folder), 'onnx', asdict(b.screening), 1, None); "
            f"r = _worker_run({str(source)!r}, None, sys.argv[1], 'none', False); "
            "print(json.dumps([r[0], 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["ok", False]


def test_exported_images_are_screened_as_one_exam_per_folder(screening_bundle, tmp_path):
    import cv2

    study = screening_bundle.study
    frame = study.table.frame
    pngs = [study.table.image_file(p) for p in frame.loc[frame["role"] == "valve", "image_path"][:2]]
    for i, p in enumerate(pngs):
        (tmp_path / "exam1").mkdir(exist_ok=True)
        shutil.copy(p, tmp_path / "exam1" / f"img{i}.png")
    cv2.imwrite(str(tmp_path / "exam1" / "img2.jpg"), cv2.imread(str(pngs[0])))
    rep = predict([tmp_path / "exam1"], screening_bundle.bundle, tmp_path / "out",
                  settings=screening_bundle.settings, progress=False)
    assert not rep.failures and len(rep.frames) == 3 and len(rep.exams) == 1


# ---------------------------------------------------------------- backends


def test_pytorch_and_onnx_agree_on_synthetic_and_real_clips(screening_bundle):
    """Same frames, same boxes: raw detector outputs within 1e-3, calibrated probabilities within 1e-4."""
    from echoavc.bundle import load_bundle
    from echoavc.dicom.read import open_dicom
    from echoavc.preprocess import prepare_clip
    from echoavc.screening import Screener

    b = load_bundle(screening_bundle.bundle)
    s = screening_bundle.settings
    torch_s, onnx_s = Screener(b, "torch", s), Screener(b, "onnx", s)
    assert torch_s.classifier.model is not None and onnx_s.classifier.model is None
    files = [screening_bundle.test_sources[0]] + [shipped_file(n) for n in
                                                  ("color3d_jpeg_baseline.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm")]
    for f in files:
        prep = prepare_clip(open_dicom(Path(f).read_bytes(), f.name), b.ingest_settings())
        images = [prep.standard(fr) for _, fr in prep.frames()][:24]
        ra, _ = torch_s.detector.raw(images)
        rb, _ = onnx_s.detector.raw(images)
        assert np.abs(ra - rb).max() < 1e-3, f.name
        kept = list(range(len(images)))
        ba, sa = torch_s.boxes(images, kept)
        bb, sb = onnx_s.boxes(images, kept)
        assert np.array_equal(np.isfinite(sa), np.isfinite(sb))
        assert np.nanmax(np.abs(np.nan_to_num(ba - bb)), initial=0) < 0.05
        # the classifier on fixed central boxes too, so real clips without a valve still compare it
        centre = np.tile([220.0, 220.0, 420.0, 420.0], (len(images), 1))
        box = np.where(np.isfinite(ba), ba, centre)
        pa, pb = torch_s.probabilities(images, box), onnx_s.probabilities(images, box)
        assert np.isfinite(pa).all() and np.abs(pa - pb).max() < 1e-4, f.name


# ---------------------------------------------------------------- command line


def test_cli_lists_failures_and_exits_1(screened, screening_bundle, tmp_path):
    from echoavc.cli import app

    _, inputs, _ = screened
    r = CliRunner().invoke(app, ["predict", str(inputs), "--model", str(screening_bundle.bundle), "--out",
                                 str(tmp_path / "o"), "--no-progress", "--backend", "onnx"])
    assert r.exit_code == 1, r.output
    assert "failed: " in r.output and "corrupt.dcm" in r.output and "report.html" in r.output
    # the bundle's own thresholds (0.25 / 0.5) applied as the status rules say; whether this weak smoke detector
    # reaches them is not the point here (tests/test_learning.py shows a trained one does)
    check_statuses_follow_the_gates(tmp_path / "o", load_bundle(screening_bundle.bundle).screening)


def check_statuses_follow_the_gates(out, screening) -> None:
    """Each frame's status from its valve score and the gates; an exam is decided exactly when it has a decided
    frame (the old check, "every exam undetermined", held for a detector that finds nothing)."""
    fr = pd.read_csv(out / "frames.csv")
    ex = pd.read_csv(out / "exams.csv")
    assert (screening.valve_conf, screening.decide_conf) == (0.25, 0.5)
    found = fr[fr["status"].isin(["decided", "low_confidence"])]
    assert (found["valve_score"] >= screening.valve_conf).all()
    assert ((found["valve_score"] >= screening.decide_conf) == (found["status"] == "decided")).all()
    assert fr.loc[fr["status"] == "no_valve", "valve_score"].isna().all()
    decided_exams = set(fr.loc[fr["status"] == "decided", "exam_id"])
    for e in ex.itertuples():
        assert (e.decision != "undetermined") == (e.exam_id in decided_exams), e
        if e.decision == "undetermined":
            assert isinstance(e.reason, str) and e.reason


def test_status_check_rejects_a_frame_decided_below_the_gate(tmp_path):
    """Feed the check a broken output: a frame called decided with a score under decide_conf."""
    from echoavc.settings import ScreeningSettings

    pd.DataFrame({"exam_id": ["E"], "status": ["decided"], "valve_score": [0.3]}).to_csv(tmp_path / "frames.csv")
    pd.DataFrame({"exam_id": ["E"], "decision": ["calcified"], "reason": [""]}).to_csv(tmp_path / "exams.csv")
    with pytest.raises(AssertionError):
        check_statuses_follow_the_gates(tmp_path, ScreeningSettings())


def test_cli_threshold_overrides_reach_the_screening(screened, screening_bundle, tmp_path):
    from echoavc.cli import app

    _, inputs, _ = screened
    src = str(screening_bundle.test_sources[0])
    r = CliRunner().invoke(app, ["predict", src, "--model", str(screening_bundle.bundle), "--out",
                                 str(tmp_path / "o"), "--no-progress", "--valve-conf", "0", "--decide-conf", "0",
                                 "--frames", "all"])  # every frame (the bundle's policy screens closed valves)
    assert r.exit_code == 0, r.output
    assert set(pd.read_csv(tmp_path / "o" / "frames.csv")["status"]) == {"decided"}
    r = CliRunner().invoke(app, ["predict", src, "--model", str(screening_bundle.bundle), "--out",
                                 str(tmp_path / "p"), "--valve-conf", "0.5", "--decide-conf", "0.2"])
    assert r.exit_code == 2 and "--decide-conf" in r.output


def test_cli_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    from echoavc.cli import app

    r = CliRunner().invoke(app, ["predict", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a model bundle" in r.output and "Traceback" not in r.output


def test_train_without_a_split_is_a_one_line_error(synthetic_study, tmp_path):
    from echoavc.cli import app

    shutil.copytree(synthetic_study.root / "table", tmp_path / "table")
    (tmp_path / "table" / "split.json").unlink(missing_ok=True)
    r = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "table"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "dataset split" in r.output


def test_a_file_without_a_cone_gets_that_status_and_an_undetermined_exam(screening_bundle, tmp_path):
    import cv2

    (tmp_path / "exam").mkdir()
    cv2.imwrite(str(tmp_path / "exam" / "black.png"), np.zeros((480, 640), np.uint8))
    rep = predict([tmp_path / "exam"], screening_bundle.bundle, tmp_path / "out", progress=False)
    assert not rep.failures and [f["status"] for f in rep.frames] == ["no_cone"]
    (e,) = rep.exams
    assert e["decision"] == "undetermined" and "cone" in e["reason"]


def test_screening_hashes_each_file_once(screening_bundle, tmp_path, monkeypatch):
    # the file's hash names it in the results and keys resumption; a long clip's bytes are tens of megabytes, so
    # the hash made on reading is handed to the DICOM parser rather than made again
    import echoavc.dicom.read

    calls = []
    real = echoavc.dicom.read.sha256_bytes

    def counting(data: bytes) -> str:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(echoavc.dicom.read, "sha256_bytes", counting)
    src = screening_bundle.test_sources[0]
    rep = predict([src], screening_bundle.bundle, tmp_path / "out", settings=screening_bundle.settings,
                  overlays="none", report=False, progress=False)
    assert not rep.failures and rep.frames
    assert calls == [src.stat().st_size]
    assert {f["source"] for f in rep.frames} == {str(src)}
