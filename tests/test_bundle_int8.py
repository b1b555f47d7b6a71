"""The int8 copies of a bundle's ONNX models (bundle format 3): written by ``echoavc train`` from validation
frames, loaded by ``--backend int8``, close to the float models; no image is kept; older bundles have none."""

import json
import shutil

import numpy as np
import pytest

from echoavc.bundle import load_bundle
from echoavc.errors import EchoAVCError
from echoavc.screening import Screener, screen_input


def test_train_writes_int8_models_calibrated_on_validation_frames(screening_bundle):
    b = load_bundle(screening_bundle.bundle)
    assert b.meta["format"] == "echoavc-bundle/3" and b.has_int8
    rec = b.meta["int8"]
    assert rec["detector"]["calibration_frames"] > 0 and rec["classifier"]["calibration_crops"] > 0
    assert rec["calibration_source"].startswith("val part")
    assert rec["detector"]["float_part"] == "decode head"
    # the ranges are in the graphs; no picture travels with the bundle beyond the validation report's own plots
    images = [r for r in b.meta["files"] if r.endswith((".png", ".jpg", ".npy", ".npz"))]
    assert all(r.startswith("validation/") or r.endswith("reliability_validation.png") for r in images), images


def _int8_graph_ops(path):
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_the_int8_backend_runs_the_quantised_graphs_and_screens_like_the_float_ones(screening_bundle, tmp_path):
    """--backend int8 loads the QDQ graphs (decode head float) and gives the float path's statuses, boxes and
    probabilities within tolerance. The smoke networks' outputs barely vary, so calibration quality is shown by
    test_quantised_classifier_keeps_the_logits_of_the_float_model, not here."""
    b = load_bundle(screening_bundle.bundle)
    ops = _int8_graph_ops(b.folder / "detector.int8.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "Softmax" in ops  # the decode head's distribution stays float
    src = screening_bundle.test_sources[0]
    data = src.read_bytes()
    got = {}
    for backend in ("onnx", "int8"):
        scr = Screener(b, backend, screening_bundle.settings)
        assert scr.backend == backend
        got[backend] = screen_input(scr, data, src.name, "sha", tmp_path, overlays="none").frames
    f32, i8 = got["onnx"], got["int8"]
    assert [f.status for f in f32] == [f.status for f in i8]
    boxed = [(a, c) for a, c in zip(f32, i8) if a.valve_box and c.valve_box]
    assert boxed
    shift = max(np.abs(np.subtract(a.valve_box, c.valve_box)).max() for a, c in boxed)
    dp = max(abs(a.probability - c.probability) for a, c in boxed)
    assert shift < 40 and dp < 0.1, (shift, dp)


def test_a_bundle_without_int8_models_refuses_the_int8_backend(screening_bundle, tmp_path):
    folder = tmp_path / "no-int8"
    shutil.copytree(screening_bundle.bundle, folder)
    meta = json.loads((folder / "bundle.json").read_text())
    for rel in ("detector.int8.onnx", "classifier/model.int8.onnx"):
        (folder / rel).unlink()
        del meta["files"][rel]
    meta["int8"] = None
    (folder / "bundle.json").write_text(json.dumps(meta))
    b = load_bundle(folder)
    assert not b.has_int8 and b.backend("auto") == "onnx"
    with pytest.raises(EchoAVCError, match="no int8 models"):
        b.backend("int8")


def _textured_crops(n, size, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(90, 50, (n, size // 4, size // 4))
    return np.clip(np.kron(base, np.ones((4, 4))) + rng.normal(0, 10, (n, size, size)), 0, 255).astype(np.uint8)


def test_quantised_classifier_keeps_the_logits_of_the_float_model(tmp_path):
    """The int8 graph is calibrated on the crops it is given: its logits follow the float model's closely."""
    import torch

    from echoavc.classifier.predict import OnnxBackend
    from echoavc.preprocess.crop import normalise
    from echoavc.quantise import quantise_classifier

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 1),
                              torch.nn.Flatten(0)).eval()
    src = tmp_path / "model.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(src), input_names=["crops"], output_names=["logits"],
                      dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    mean, std = [0.5] * 3, [0.25] * 3
    rec = quantise_classifier(src, tmp_path / "model.int8.onnx", list(_textured_crops(32, 32, 1)), mean, std)
    assert rec["calibration_crops"] == 32
    x = normalise(_textured_crops(64, 32, 2), mean, std)
    f32, i8 = OnnxBackend(src)(x), OnnxBackend(tmp_path / "model.int8.onnx")(x)
    spread = f32.max() - f32.min()
    assert spread > 0 and np.abs(f32 - i8).max() < 0.1 * spread, (np.abs(f32 - i8).max(), spread)
    assert np.corrcoef(f32, i8)[0, 1] > 0.98
