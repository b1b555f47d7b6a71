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
