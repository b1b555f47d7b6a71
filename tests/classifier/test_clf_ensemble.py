"""An ensemble classifier is its members' mean logit, calibrated as one model, and reads like one network:
ONNX, Grad-CAM and the grade head's features work on it; members trained apart combine into the same model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from echoavc.classifier.data import CropSource, load_samples
from echoavc.classifier.predict import Classifier
from echoavc.errors import EchoAVCError


def _settings(**kw):
    from echoavc.settings import classifier_preset

    return classifier_preset("smoke", **{"threads": 1, "epochs": 1, "cross_validate": "never", **kw})


@pytest.fixture(scope="module")
def members(synthetic_study, tmp_path_factory):
    """Single networks with seeds 0 and 1, and the two-member ensemble trained in one go (seeds 0, 1)."""
    from echoavc.classifier.train import train_classifier

    root = tmp_path_factory.mktemp("ensemble")
    st = synthetic_study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in (("s0", {"seed": 0}), ("s1", {"seed": 1}), ("both", {"members": 2})):
            train_classifier(st.table, st.split, root / name, _settings(**kw))
    return root


def _crops(st, clf):
    samples = [s for s in load_samples(st.table, st.split) if s.part in ("val", "test")]
    return CropSource(st.table, clf.crop, clf.noise_reduction).batch(samples)


def test_ensemble_logit_is_the_mean_of_its_seeds_networks(members, synthetic_study):
    meta = json.loads((members / "both" / "classifier.json").read_text())
    assert meta["members"] == 2 and [f["seed"] for f in meta["member_fits"]] == [0, 1]
    assert meta["format"] == "echoavc-classifier/2"  # an echoavc made before ensembles refuses it by name
    single = json.loads((members / "s0" / "classifier.json").read_text())
    assert single["members"] == 1 and single["format"] == "echoavc-classifier/1"
    a, b, e = (Classifier.load(members / n) for n in ("s0", "s1", "both"))
    crops = _crops(synthetic_study, e)
    za, zb = a.logits(crops), b.logits(crops)
    assert not np.allclose(za, zb, atol=1e-3)  # two seeds, two networks
    assert np.allclose(e.logits(crops), (za + zb) / 2, atol=1e-5)
    assert e.calibration.to_dict() != a.calibration.to_dict()  # calibrated as one model, on its own logits


def test_members_trained_apart_combine_into_the_same_model(members, synthetic_study, tmp_path):
    from echoavc.classifier.ensemble import combine_classifiers

    st = synthetic_study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        combine_classifiers([members / "s0", members / "s1"], st.table, st.split, tmp_path / "c")
    c, e = Classifier.load(tmp_path / "c"), Classifier.load(members / "both")
    crops = _crops(st, e)
    assert np.allclose(c.predict_proba(crops), e.predict_proba(crops), atol=1e-6)
    assert c.threshold == pytest.approx(e.threshold)


def test_ensemble_reads_like_one_network(members, synthetic_study, tmp_path):
    import shutil

    d = tmp_path / "e"
    shutil.copytree(members / "both", d)
    eager, onnx = Classifier.load(d, backend="torch"), Classifier.load(d, backend="onnx")
    crops = _crops(synthetic_study, eager)
    assert np.allclose(onnx.predict_proba(crops), eager.predict_proba(crops), atol=1e-5)
    one = Classifier.load(members / "s0")
    _, f_one = one.logits_and_features(crops[:3])
    z, f = onnx.logits_and_features(crops[:3])
    assert f.shape == (3, 2 * f_one.shape[1])  # the grade head reads both members' features
    for clf in (eager, onnx):  # ONNX screening draws the ensemble's heat map with PyTorch
        cam, logit = clf.grad_cam(crops[0])
        assert cam.shape == crops[0].shape and 0 <= cam.min() and cam.max() <= 1
        assert logit == pytest.approx(float(eager.logits(crops[:1])[0]), abs=1e-4)


def test_combine_refuses_what_cannot_be_averaged(members, synthetic_study, tmp_path):
    from echoavc.classifier.ensemble import combine_classifiers
    from echoavc.classifier.train import train_and_calibrate

    st = synthetic_study
    with pytest.raises(EchoAVCError, match="two or more"):
        combine_classifiers([members / "s0"], st.table, st.split, tmp_path / "x")
    with pytest.raises(EchoAVCError, match="already an ensemble"):
        combine_classifiers([members / "both", members / "s0"], st.table, st.split, tmp_path / "x")
    meta = json.loads((members / "s1" / "classifier.json").read_text())
    meta["settings"]["lr"] = 0.5
    (tmp_path / "s1b").mkdir()
    (tmp_path / "s1b" / "model.safetensors").write_bytes((members / "s1" / "model.safetensors").read_bytes())
    (tmp_path / "s1b" / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(EchoAVCError, match=r"other settings .*\(lr\)"):
        combine_classifiers([members / "s0", tmp_path / "s1b"], st.table, st.split, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    samples = load_samples(st.table, st.split)
    train = [x for x in samples if x.part == "train"]
    val = [x for x in samples if x.part == "val"]
    s = _settings(members=2, cross_validate="always")
    with pytest.raises(EchoAVCError, match="members > 1 needs a validation part"):
        train_and_calibrate(CropSource(st.table, s.crop, s.noise_reduction), train, val, s)


def test_a_bundle_screens_with_an_ensemble_and_its_card_says_so(members, synthetic_study, tiny_detector, tmp_path):
    import cv2

    from echoavc.bundle import load_bundle, save_bundle
    from echoavc.screening.core import Screener
    from echoavc.settings import IngestSettings, ScreeningSettings

    b = load_bundle(save_bundle(tmp_path / "bundle", detector_weights=tiny_detector.result.best,
                                classifier_dir=members / "both", ingest=IngestSettings(),
                                screening=ScreeningSettings(), exam_threshold=0.5))
    assert "an ensemble of 2 networks" in (b.folder / "MODEL_CARD.md").read_text()
    samples = [s for s in load_samples(synthetic_study.table) if s.box is not None][:3]
    images = [cv2.imread(str(synthetic_study.table.image_file(s.image_path)), cv2.IMREAD_GRAYSCALE) for s in samples]
    boxes = np.array([s.box for s in samples])
    got = [Screener(b, backend).crop_predictions(images, boxes)[0] for backend in ("torch", "onnx")]
    assert np.all(np.isfinite(got[0])) and np.allclose(got[0], got[1], atol=1e-4)
    e = Classifier.load(members / "both")
    want = [float(e.predict_proba(e.box_crops(img, box), per_box=e.boxes_per_probability)[0])
            for img, box in zip(images, boxes)]
    assert np.allclose(got[0], want, atol=1e-6)
