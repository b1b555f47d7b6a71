"""Training writes a checkpoint with its settings and calibration; predictions are reproducible; ONNX matches."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest

from echoavc.classifier.data import CropSource, load_samples
from echoavc.classifier.predict import Classifier, load_model
from echoavc.classifier.train import META_FILE, MODEL_FILE


def _test_crops(sc, clf):
    samples = [s for s in load_samples(sc.table, sc.split) if s.part == "test"]
    return CropSource(sc.table, clf.crop, clf.noise_reduction).batch(samples), samples


def test_checkpoint_holds_weights_settings_and_calibration(smoke_classifier):
    d = smoke_classifier.model_dir
    assert (d / MODEL_FILE).is_file() and (d / META_FILE).is_file()
    raw = (d / MODEL_FILE).read_bytes()
    assert not raw.startswith(b"PK") and not raw.startswith(b"\x80")  # not a zip/pickle: safetensors
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert any(k.startswith("backbone.") for k in header) and "dense.weight" in header
    meta = json.loads((d / META_FILE).read_text())
    s = smoke_classifier.settings
    assert meta["format"] == "echoavc-classifier/1"
    assert (meta["backbone"], meta["pooling"], meta["input_size"]) == (s.backbone, s.pooling, s.crop.size)
    assert meta["crop"] == {"size": s.crop.size, "margin": s.crop.margin, "jitter": s.crop.jitter,
                            "test_boxes": s.crop.test_boxes}
    assert meta["noise_reduction"] is True and meta["normalisation"]["mean"] == list(s.mean)
    assert meta["calibration"]["method"] == "temperature" and meta["calibration"]["temperature"] > 0
    assert 0 <= meta["threshold"] <= 1 and meta["threshold_rule"]["rule"] == "recall"
    assert meta["data"]["split_fingerprint"] == smoke_classifier.split.fingerprint
    assert meta["data"]["protocol"] == "patient" and meta["data"]["leaky"] is False
    assert meta["settings"]["preset"] == "smoke"
    # a 10-patient study has 2 validation patients: pooled out-of-fold predictions replace them
    assert meta["calibration_data"]["kind"] == "out-of-fold" and meta["cv"]["k"] >= 2
    assert (d / "reliability_validation.png").is_file()


def test_training_never_sees_test_patients(smoke_classifier):
    parts = json.loads((smoke_classifier.model_dir / META_FILE).read_text())["data"]["parts"]
    test_patients = {p for p, r in smoke_classifier.split.patients.items() if r["part"] == "test"}
    assert parts["test"]["patients"] == len(test_patients)
    cal = smoke_classifier.trained.meta["calibration_data"]
    assert cal["patients"] == parts["train"]["patients"] + parts["val"]["patients"]


def test_reload_reproduces_the_trained_model(smoke_classifier):
    clf = Classifier.load(smoke_classifier.model_dir)
    crops, _ = _test_crops(smoke_classifier, clf)
    a = clf.predict_proba(crops)
    b = Classifier.load(smoke_classifier.model_dir).predict_proba(crops)
    assert np.array_equal(a, b)
    from echoavc.classifier.train import predict_logits

    s = smoke_classifier.settings
    z = predict_logits(smoke_classifier.trained.model, crops, s.mean, s.std)
    assert np.allclose(clf.logits(crops), z, atol=1e-5)
    assert np.allclose(a, smoke_classifier.trained.calibration(z), atol=1e-6)
    p, calls = clf.predict(crops)
    assert np.array_equal(calls, p >= clf.threshold)


def test_same_seed_same_weights(synthetic_study, tmp_path):
    import torch

    from echoavc.classifier.train import train_classifier
    from echoavc.settings import classifier_preset

    s = classifier_preset("smoke", threads=1, epochs=1, cross_validate="never", calibration="none",
                          threshold_rule="fixed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # torch's warning for float() of a loss that still holds its graph: the loop must detach it first
        warnings.filterwarnings("error", message="Converting a tensor with requires_grad")
        a = train_classifier(synthetic_study.table, synthetic_study.split, tmp_path / "a", s).model.state_dict()
        b = train_classifier(synthetic_study.table, synthetic_study.split, tmp_path / "b", s).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_onnx_matches_pytorch(smoke_classifier, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(smoke_classifier.model_dir, d)
    eager = Classifier.load(d, backend="torch")
    onnx = Classifier.load(d, backend="onnx")
    assert (d / "model.onnx").is_file()
    crops, _ = _test_crops(smoke_classifier, eager)
    assert np.allclose(onnx.logits(crops), eager.logits(crops), atol=1e-4)
    assert np.allclose(onnx.predict_proba(crops), eager.predict_proba(crops), atol=1e-5)
    assert np.allclose(onnx.logits(crops[:1]), eager.logits(crops[:1]), atol=1e-4)  # dynamic batch


def test_prepare_uses_the_stored_crop_settings(smoke_classifier):
    import cv2

    clf = Classifier.load(smoke_classifier.model_dir)
    crops, samples = _test_crops(smoke_classifier, clf)
    s = samples[0]
    img = cv2.imread(str(smoke_classifier.table.image_file(s.image_path)), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(clf.prepare(img, s.box), crops[0])
    with pytest.raises(Exception, match="use Classifier.prepare"):
        clf.logits(np.zeros((1, 10, 10), np.uint8))


def test_load_rejects_a_foreign_folder(tmp_path):
    from echoavc.errors import EchoAVCError

    with pytest.raises(EchoAVCError, match="not a classifier folder"):
        load_model(tmp_path)
    (tmp_path / META_FILE).write_text('{"format": "other"}')
    with pytest.raises(EchoAVCError, match="not an echoavc classifier"):
        load_model(tmp_path)
