"""Model bundles: everything needed to screen, loadable without unpickling, refused when unsafe or mismatched."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from echoavc.bundle import BUNDLE_FORMAT, load_bundle, looks_like_pickle
from echoavc.errors import EchoAVCError
from echoavc.settings import IngestSettings


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "b")


def _meta(folder):
    return json.loads((folder / "bundle.json").read_text())


def _write_meta(folder, meta):
    (folder / "bundle.json").write_text(json.dumps(meta))


def test_bundle_holds_both_stages_settings_and_provenance(tiny_bundle):
    b = load_bundle(tiny_bundle)
    m = b.meta
    assert m["format"] == BUNDLE_FORMAT and "Research use only" in m["intended_use"]
    assert {"detector.safetensors", "detector.safetensors.json", "detector.onnx", "classifier/model.safetensors",
            "classifier/classifier.json", "classifier/model.onnx", "MODEL_CARD.md"} <= set(m["files"])
    p = m["preprocessing"]
    assert p["standard_size"] == 640 and p["crop"]["size"] == 64 and "mean" in p["normalisation"]
    assert {"frame", "exam"} <= set(m["thresholds"]) and m["versions"]["echoavc"]
    assert b.has_onnx and b.backend("auto") == "onnx"
    # nothing in a bundle is a pickle
    assert not any(looks_like_pickle(f) for f in tiny_bundle.rglob("*") if f.is_file())


def test_pickle_free_detector_matches_the_checkpoint(tiny_bundle, tiny_detector):
    from echoavc.detector.predict import Detector

    rng = np.random.default_rng(0)
    imgs = [(rng.random((640, 640)) * 255).astype(np.uint8) for _ in range(2)]
    ref = Detector(tiny_detector.result.best)
    state = load_bundle(tiny_bundle).detector("torch")
    a, _ = ref.raw(imgs)
    b, _ = state.raw(imgs)
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_crafted_pickle_is_refused_whatever_its_name(bundle_copy):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    (bundle_copy / "detector.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(EchoAVCError, match="pickle"):
        load_bundle(bundle_copy)


def test_a_torch_checkpoint_slipped_in_is_refused(bundle_copy, tiny_detector):
    shutil.copy(tiny_detector.result.best, bundle_copy / "classifier" / "extra.bin")
    with pytest.raises(EchoAVCError, match="pickle") as e:
        load_bundle(bundle_copy)
    assert "extra.bin" in str(e.value)


def test_zip_without_pickle_is_not_called_a_pickle(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert not looks_like_pickle(z)
    raw = tmp_path / "p.bin"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert looks_like_pickle(raw)


def test_changed_weights_are_refused(bundle_copy):
    f = bundle_copy / "classifier" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(EchoAVCError, match="sha256"):
        load_bundle(bundle_copy)


def test_other_format_version_is_refused(bundle_copy):
    m = _meta(bundle_copy)
    m["format"] = "echoavc-bundle/99"
    _write_meta(bundle_copy, m)
    with pytest.raises(EchoAVCError, match="incompatible echoavc version"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("path,value", [(("crop", "margin"), 0.3), (("standard_size",), 512),
                                        (("normalisation", "mean"), [0.5, 0.5, 0.5]), (("detector_imgsz",), 320)])
def test_preprocessing_edited_in_the_record_is_refused(bundle_copy, path, value):
    m = _meta(bundle_copy)
    d = m["preprocessing"]
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    _write_meta(bundle_copy, m)
    with pytest.raises(EchoAVCError, match="preprocessing") as e:
        load_bundle(bundle_copy)
    assert path[-1] in str(e.value)


def test_screening_with_other_ingest_settings_is_refused(tiny_bundle):
    with pytest.raises(EchoAVCError, match="other preprocessing.*standard_size"):
        load_bundle(tiny_bundle, ingest=replace(IngestSettings(), size=512))
    load_bundle(tiny_bundle, ingest=IngestSettings())  # its own settings are fine


def test_not_a_bundle_and_missing_files_are_one_line_errors(bundle_copy, tmp_path):
    with pytest.raises(EchoAVCError, match="no bundle.json"):
        load_bundle(tmp_path)
    (bundle_copy / "detector.onnx").unlink()
    with pytest.raises(EchoAVCError, match="missing"):
        load_bundle(bundle_copy)
