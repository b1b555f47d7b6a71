"""Bundles made before a change keep loading and screening the same (bundle.json format versions).

A bundle made by an older echoavc is 30 MB, too big to keep here, so its ``bundle.json`` is kept
(tests/data/bundles/format1-bundle.json) and laid over the weights of this session's smoke bundle: the
document's shape is the older version's, the values are the ones that fit these weights.
"""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from echoavc.bundle import BUNDLE_FORMAT, load_bundle
from echoavc.preprocess import Preprocessing
from echoavc.screening import Screener, screen_input

FORMAT1 = Path(__file__).parent / "data" / "bundles" / "format1-bundle.json"
FORMAT2 = Path(__file__).parent / "data" / "bundles" / "format2-bundle.json"
FORMAT3 = Path(__file__).parent / "data" / "bundles" / "format3-bundle.json"
SECTIONS = ("preprocessing", "screening", "thresholds", "detector", "classifier")


def _format1() -> dict:
    return json.loads(FORMAT1.read_text())


def _keys(d):
    """The shape of a record: its keys, nested (values left out)."""
    return {k: _keys(v) for k, v in d.items()} if isinstance(d, dict) else None


def _as_format1(meta: dict, old: dict) -> dict:
    """``meta`` written in the older document's shape: its keys only, nested, with the older format name."""
    def keep(new, shape):
        if not isinstance(shape, dict) or not isinstance(new, dict):
            return new
        return {k: keep(new[k], shape[k]) for k in shape if k in new}

    doc = {k: (keep(meta[k], old[k]) if k in SECTIONS else meta[k]) for k in old if k in meta}
    doc["format"] = old["format"]
    return doc


def test_the_format_1_preprocessing_record_reads_back_exactly():
    old = _format1()["preprocessing"]
    pre = Preprocessing.from_dict(old)
    assert pre.to_dict() == old
    assert json.dumps(pre.to_dict()) == json.dumps(old)  # same order, same types
    ingest = pre.ingest_settings()
    assert (ingest.size, ingest.every_nth, ingest.cone.sample_frames) == (640, 1, 24)
    assert (pre.crop().size, pre.crop().margin, pre.detector_imgsz) == (64, 0.1, 96)


def test_the_writer_keeps_the_current_formats_shape_while_its_version_stays(screening_bundle):
    old = json.loads(FORMAT3.read_text())  # the newest format's recorded shape
    new = json.loads((screening_bundle.bundle / "bundle.json").read_text())
    if new["format"] != old["format"]:
        pytest.skip(f"bundles are now {new['format']}: record its shape beside {FORMAT3.name}")
    # a change of shape needs a new format version (and a reader for this one)
    assert BUNDLE_FORMAT == old["format"]
    assert list(new) == list(old)
    for k in SECTIONS:
        assert _keys(new[k]) == _keys(old[k]), k


@pytest.mark.parametrize("doc", [FORMAT1, FORMAT2], ids=["format1", "format2"])
def test_an_older_bundle_loads_and_screens_identically(screening_bundle, tmp_path, doc):
    """Formats 1 and 2 (no int8 models): loaded, screened the same, and no int8 backend on offer."""
    old = json.loads(doc.read_text())
    current = load_bundle(screening_bundle.bundle)
    folder = tmp_path / "older"
    shutil.copytree(screening_bundle.bundle, folder)
    (folder / "bundle.json").write_text(json.dumps(_as_format1(current.meta, old), indent=1) + "\n")
    legacy = load_bundle(folder)
    assert legacy.meta["format"] == old["format"]
    assert not legacy.has_int8 and legacy.backend("auto") == "onnx"
    assert legacy.preprocess() == current.preprocess()
    assert legacy.ingest_settings() == current.ingest_settings()
    assert (legacy.frame_threshold, legacy.exam_threshold) == (current.frame_threshold, current.exam_threshold)
    src = screening_bundle.test_sources[0]
    data = src.read_bytes()
    got = []
    for bundle in (current, legacy):
        screener = Screener(bundle, "onnx", screening_bundle.settings)
        clip = screen_input(screener, data, src.name, "sha", tmp_path / "out", overlays="none")
        got.append([(f.status, f.valve_box, f.probability, f.decision) for f in clip.frames])
    assert got[0] == got[1] and any(s == "decided" for s, *_ in got[0])
    probs = [p for _, _, p, _ in got[0] if p is not None]
    assert np.isfinite(probs).all()


def test_a_format_2_bundle_loads_with_every_frame_screened(screening_bundle, tmp_path):
    """Format 3 added the frame policy (screening.frames); a format-2 bundle chose its exam threshold on every
    frame, so it screens every frame still."""
    old = json.loads(FORMAT2.read_text())
    current = load_bundle(screening_bundle.bundle)
    assert current.screening.frames == "closed"
    folder = tmp_path / "format2"
    shutil.copytree(screening_bundle.bundle, folder)
    (folder / "bundle.json").write_text(json.dumps(_as_format1(current.meta, old), indent=1) + "\n")
    legacy = load_bundle(folder)
    assert legacy.meta["format"] == "echoavc-bundle/2" and "frames" not in legacy.meta["screening"]
    assert legacy.screening.frames == "all"
    src = screening_bundle.test_sources[0]
    clip = screen_input(Screener(legacy, "onnx", replace(legacy.screening, valve_conf=0.0, decide_conf=0.0)),
                        src.read_bytes(), src.name, "sha", tmp_path / "out", overlays="none")
    assert {f.status for f in clip.frames} == {"decided"} and clip.phase["frames"] == "all"


def _logits_only_onnx(net, path):
    """The classifier graph as formats 1-2 exported it: ``logits`` only."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, net.input_size, net.input_size),), str(path),
                          input_names=["crops"], output_names=["logits"],
                          dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)


def test_a_format_2_bundle_with_its_grade_graph_loads_and_screens_as_format_3(screening_bundle, tmp_path):
    """Format 2 held a logits-only classifier graph and grade.onnx (the backbone again, then the head). Such a
    bundle still loads, its grade runs on that second graph, and every frame gets the probability and grade
    probabilities format 3's single pass gives."""
    import hashlib

    from echoavc.classifier.grade import GradeHead
    from echoavc.classifier.grade_model import export_grade_onnx
    from echoavc.classifier.predict import load_model

    current = load_bundle(screening_bundle.bundle)
    assert current.meta["format"] == BUNDLE_FORMAT == "echoavc-bundle/3" and current.has_grade
    folder = tmp_path / "format2"
    shutil.copytree(screening_bundle.bundle, folder)
    cdir = folder / "classifier"
    net, _ = load_model(cdir)
    _logits_only_onnx(net, cdir / "model.onnx")
    export_grade_onnx(net, GradeHead.load(cdir), cdir / "grade.onnx")
    meta = json.loads((folder / "bundle.json").read_text())
    meta["format"] = "echoavc-bundle/2"
    for rel in ("classifier/model.onnx", "classifier/grade.onnx"):
        meta["files"][rel] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    (folder / "bundle.json").write_text(json.dumps(meta, indent=1) + "\n")
    legacy = load_bundle(folder)
    src = screening_bundle.test_sources[0]
    frames = []
    for bundle in (current, legacy):
        screener = Screener(bundle, "onnx", screening_bundle.settings)
        frames.append(screen_input(screener, src.read_bytes(), src.name, "sha", tmp_path / "out", overlays="none").frames)
    assert screener.grader.classifier is None and screener.grader.session is not None  # format 2: two graphs
    new, old = frames
    assert [(f.status, f.valve_box) for f in new] == [(f.status, f.valve_box) for f in old]
    decided = [(a, b) for a, b in zip(new, old) if a.probability is not None]
    assert decided and all(abs(a.probability - b.probability) < 1e-5 for a, b in decided)
    assert np.abs(np.array([a.grade_probabilities for a, _ in decided])
                  - np.array([b.grade_probabilities for _, b in decided])).max() < 1e-4
