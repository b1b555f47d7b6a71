"""The severity grade: the ordinal head (fit, calibration, files), its training beside an unchanged binary
classifier, and its place in a bundle (issue 17)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from echoavc.classifier.grade import (NOT_TRAINED, GradeHead, class_probabilities, exam_grade, fit_grade_temperature,
                                      fit_ordinal, has_grade, median_grade, ordinal_nll)
from echoavc.errors import EchoAVCError


def _ordered_data(n, rng, d=20):
    """Features where a latent severity drives 3 of ``d`` dimensions; grades are cuts of it."""
    latent = rng.normal(size=n)
    x = np.c_[latent[:, None] * np.array([1.0, 0.6, 0.3]) + rng.normal(scale=0.4, size=(n, 3)),
              rng.normal(size=(n, d - 3))]
    return x, np.digitize(latent, [-0.2, 0.6, 1.3]), latent


def test_ordinal_head_learns_a_known_ordering_and_gives_proper_ordered_probabilities():
    rng = np.random.default_rng(0)
    x, g, _ = _ordered_data(800, rng)
    w, cut = fit_ordinal(x, g, 4, l2=1e-2)
    assert np.all(np.diff(cut) > 0)  # ordered cut points
    x_new, g_new, latent_new = _ordered_data(400, rng)
    z = x_new @ w[:, None] - cut[None, :]
    p = class_probabilities(z)
    assert np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()
    cum = 1.0 / (1.0 + np.exp(-z))
    assert (np.diff(cum, axis=1) <= 1e-12).all()  # P(grade > k) falls with k for every crop
    pred = median_grade(p)
    assert cohen_kappa_score(g_new, pred, weights="quadratic") > 0.85
    # the weight points along the severity: the three informative features carry it, with its sign
    assert (w[:3] > 0).all() and np.abs(w[:3]).min() > 3 * np.abs(w[3:]).max()
    # a higher latent severity never gives a lower mean predicted grade
    order = np.argsort(latent_new)
    assert np.all(np.diff([pred[order][i:i + 100].mean() for i in range(0, 400, 100)]) > 0)
    # the fit is the maximum likelihood: moving away from it costs log-loss
    assert ordinal_nll(x @ w[:, None] - cut[None, :], g) < ordinal_nll(x @ (0.8 * w)[:, None] - cut[None, :], g)


def test_temperature_undoes_an_overconfident_scale():
    rng = np.random.default_rng(1)
    x, g, _ = _ordered_data(1500, rng)
    w, cut = fit_ordinal(x, g, 4, l2=1e-3)
    z = x @ w[:, None] - cut[None, :]
    assert fit_grade_temperature(3.0 * z, g) == pytest.approx(3.0, rel=0.15)
    assert fit_grade_temperature(z, g) == pytest.approx(1.0, rel=0.1)


def test_median_grade_and_exam_grade_by_hand():
    p = np.array([[0.40, 0.05, 0.05, 0.50],   # cumulative 0.40 0.45 0.50 -> 2
                  [0.60, 0.20, 0.10, 0.10],   # -> 0
                  [0.10, 0.30, 0.30, 0.30]])  # 0.10 0.40 0.70 -> 2
    assert median_grade(p).tolist() == [2, 0, 2]
    grade, mean = exam_grade(p[1:])  # mean (0.35, 0.25, 0.2, 0.2): cumulative 0.35, 0.60 -> 1
    assert grade == 1 and np.allclose(mean, [0.35, 0.25, 0.20, 0.20])


def test_exam_pooling_geometric_by_hand_and_its_sharpness_recovered():
    from echoavc.classifier.grade import fit_exam_sharpness, pool_frames

    p = np.array([[0.6, 0.2, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1]])
    q = pool_frames(p, {"kind": "geometric", "sharpness": 2.0})
    by_hand = np.exp(2.0 * np.log(p).mean(axis=0))
    assert np.allclose(q, by_hand / by_hand.sum())
    assert np.allclose(pool_frames(p), p.mean(axis=0))  # heads fitted before the rule: the mean, as before
    assert exam_grade(p, {"kind": "geometric", "sharpness": 2.0})[0] == 1  # q = (.48, .40, .08, .04)
    # exams whose grade is drawn from the sharpness-1.7 pooling of their frames: the fit finds 1.7
    rng = np.random.default_rng(3)
    frames, grades = [], []
    for _ in range(3000):
        f = rng.dirichlet(np.ones(4), size=6)
        frames.append(f)
        grades.append(rng.choice(4, p=pool_frames(f, {"kind": "geometric", "sharpness": 1.7})))
    assert fit_exam_sharpness(frames, grades) == pytest.approx(1.7, rel=0.1)


def test_grade_head_files_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x, g, _ = _ordered_data(300, rng)
    mu, sd = x.mean(0), x.std(0)
    w, cut = fit_ordinal((x - mu) / sd, g, 4)
    head = GradeHead(w, cut, mu, sd, 1.7, {"model": {"kind": "test"}})
    head.save(tmp_path)
    assert has_grade(tmp_path)
    back = GradeHead.load(tmp_path)
    assert back.temperature == 1.7 and back.n_classes == 4 and back.meta["model"]["kind"] == "test"
    assert np.allclose(back.probabilities(x), head.probabilities(x), atol=1e-5)  # float32 on disk
    meta = json.loads((tmp_path / "grade.json").read_text())
    meta["format"] = "something else"
    (tmp_path / "grade.json").write_text(json.dumps(meta))
    with pytest.raises(EchoAVCError, match="grade.json"):
        GradeHead.load(tmp_path)


def test_auxiliary_ordinal_loss_by_hand_skips_crops_without_a_grade_and_learns_an_ordering():
    """The training-time grade output (ClassifierSettings.grade_loss): its loss is the mean cross-entropy of the
    three "grade > k" questions over graded crops only, and minimising it orders the crops by severity."""
    import torch

    from echoavc.classifier.model import OrdinalAux

    torch.manual_seed(0)
    aux = OrdinalAux(3)
    with torch.no_grad():
        aux.score.weight[:] = torch.tensor([[1.0, 0.0, 0.0]])
        aux.score.bias[:] = 0.0
        aux.first_cut[:] = -1.0
        aux.gaps[:] = 0.0  # cut points -1, -1 + ln 2, -1 + 2 ln 2
    x = torch.tensor([[0.5, 9.0, 9.0], [3.0, 0.0, 0.0]])
    cuts = -1.0 + np.log(2.0) * np.arange(3)
    z = 0.5 - cuts
    target = np.array([1.0, 1.0, 0.0])  # grade 2
    by_hand = np.mean(np.logaddexp(0.0, z) - target * z)
    got = aux.loss(x, torch.tensor([2, -1]))  # the second crop has no grade: left out
    assert float(got.detach()) == pytest.approx(by_hand, rel=1e-6)
    assert float(aux.loss(x, torch.tensor([-1, -1])).detach()) == 0.0
    rng = np.random.default_rng(0)
    feats, grades, latent = _ordered_data(600, rng, d=8)
    aux = OrdinalAux(8)
    opt = torch.optim.Adam(aux.parameters(), lr=0.05)
    xt, gt = torch.tensor(feats, dtype=torch.float32), torch.tensor(grades)
    for _ in range(300):
        opt.zero_grad()
        aux.loss(xt, gt).backward()
        opt.step()
    with torch.no_grad():
        cum = aux.cumulative_logits(xt).numpy()
    assert (np.diff(cum, axis=1) < 0).all()  # ordered cut points: P(grade > k) falls with k
    assert np.corrcoef(cum[:, 0], latent)[0, 1] > 0.8


def test_grade_loss_changes_training_only_when_the_crops_carry_grades(smoke_classifier):
    """grade_loss > 0 without grades trains exactly the binary-only network; with grades the backbone also learns
    the ordinal task (its loss is logged per epoch) and ends elsewhere."""
    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.train import fit_model, training_samples

    s = dataclasses.replace(smoke_classifier.settings, epochs=1)
    samples = [x for x in load_samples(smoke_classifier.table, smoke_classifier.split) if x.part == "train"]
    assert len({x.grade for x in samples}) >= 2
    source = CropSource(smoke_classifier.table, s.crop, s.noise_reduction, max_jitter=s.crop.jitter)
    train = training_samples(samples, s, 0)
    no_grades = [dataclasses.replace(x, grade=None) for x in train]

    def weights(items, settings):
        model, fit = fit_model(source, items, [], settings, seed=0)
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}, fit

    plain, fit_plain = weights(train, s)
    joint_settings = dataclasses.replace(s, grade_loss=1.0)
    ungraded, fit_ungraded = weights(no_grades, joint_settings)
    joint, fit_joint = weights(train, joint_settings)
    assert all(np.array_equal(plain[k], ungraded[k]) for k in plain)
    assert fit_plain.grade_crops == fit_ungraded.grade_crops == 0
    assert "train_grade_loss" not in fit_ungraded.history[0]
    assert fit_joint.grade_crops == len(train) and fit_joint.history[0]["train_grade_loss"] > 0
    assert plain.keys() == joint.keys()  # the training-only grade output is not part of the saved network
    assert any(not np.allclose(plain[k], joint[k]) for k in plain)
    with pytest.raises(EchoAVCError, match="grade_loss"):
        dataclasses.replace(s, grade_loss=-1.0)


def test_the_grade_record_and_the_model_card_say_whether_the_network_trained_with_the_grade_loss(smoke_classifier,
                                                                                                tmp_path):
    from echoavc.classifier.grade import grade_note
    from echoavc.classifier.train import train_classifier
    from echoavc.model_card import grade_card

    plain = grade_note(smoke_classifier.model_dir)
    assert plain["model"]["network_grade_loss"] == 0.0 and "grade loss" not in grade_card(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_classifier(smoke_classifier.table, smoke_classifier.split, tmp_path / "joint",
                         dataclasses.replace(smoke_classifier.settings, grade_loss=0.5, epochs=1))
    joint = grade_note(tmp_path / "joint")
    assert joint["model"]["network_grade_loss"] == 0.5
    assert "trained with the grade loss (weight 0.5)" in grade_card(joint)
    meta = json.loads((tmp_path / "joint" / "classifier.json").read_text())
    assert meta["settings"]["grade_loss"] == 0.5 and meta["fit"]["grade_crops"] > 0


# ---------------------------------------------------------------- with the smoke classifier


def test_training_with_grades_fits_a_head_and_leaves_the_binary_model_as_without(smoke_classifier, tmp_path):
    """The binary network, calibration and threshold are the same whether or not the labels carry grades;
    with grades the folder also holds the grade head, without them it holds none and says so."""
    from safetensors.numpy import load_file

    from echoavc.classifier.train import train_classifier

    with_dir = smoke_classifier.model_dir
    assert has_grade(with_dir) and smoke_classifier.trained.grade is not None
    gmeta = json.loads((with_dir / "grade.json").read_text())
    assert gmeta["classes"] == [0, 1, 2, 3][:len(gmeta["classes"])] and gmeta["temperature"] > 0
    assert gmeta["exam_pooling"]["kind"] == "geometric" and gmeta["exam_pooling"]["sharpness"] > 0
    table = dataclasses.replace(smoke_classifier.table, frame=smoke_classifier.table.frame.assign(grade=np.nan))
    logs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = train_classifier(table, smoke_classifier.split, tmp_path / "nograde", smoke_classifier.settings,
                                   log=logs.append)
    assert trained.grade is None and not has_grade(tmp_path / "nograde") and NOT_TRAINED in logs
    a, b = load_file(str(with_dir / "model.safetensors")), load_file(str(tmp_path / "nograde" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ma = json.loads((with_dir / "classifier.json").read_text())
    mb = json.loads((tmp_path / "nograde" / "classifier.json").read_text())
    assert (ma["calibration"], ma["threshold"]) == (mb["calibration"], mb["threshold"])


def test_bundle_carries_the_head_and_says_when_there_is_none(tiny_bundle, smoke_classifier, tiny_detector, tmp_path):
    from echoavc.bundle import load_bundle, save_bundle
    from echoavc.classifier.predict import Classifier
    from echoavc.settings import IngestSettings, ScreeningSettings

    b = load_bundle(tiny_bundle)
    assert b.has_grade and b.grade_info["trained"] and "classifier/grade.safetensors" in b.meta["files"]
    assert "classifier/grade.onnx" not in b.meta["files"]  # format 3: no second copy of the backbone
    assert "## Severity grade" in (tiny_bundle / "MODEL_CARD.md").read_text()
    crops = np.random.default_rng(0).integers(0, 255, (5, 64, 64), dtype=np.uint8)
    p_onnx, p_torch = b.grader("onnx").predict_proba(crops), b.grader("torch").predict_proba(crops)
    assert p_onnx.shape == (5, b.grader("torch").n_classes) and np.allclose(p_onnx, p_torch, atol=1e-4)
    # a classifier folder without the head: the bundle says so and screens without a grade
    plain = tmp_path / "clf"
    plain.mkdir()
    for f in ("model.safetensors", "classifier.json"):
        shutil.copy2(smoke_classifier.model_dir / f, plain / f)
    nb = load_bundle(save_bundle(tmp_path / "bundle", detector_weights=tiny_detector.result.best, classifier_dir=plain,
                                 ingest=IngestSettings(), screening=ScreeningSettings(), exam_threshold=0.5))
    assert not nb.has_grade and nb.grader() is None and nb.grade_info == {"trained": False, "note": NOT_TRAINED}
    assert nb.card()["grade"] == NOT_TRAINED and NOT_TRAINED in (tmp_path / "bundle" / "MODEL_CARD.md").read_text()
    # the binary classifier is the same with and without the head beside it
    assert np.array_equal(nb.classifier("onnx").logits(crops), b.classifier("onnx").logits(crops))
    assert np.array_equal(Classifier.load(plain).logits(crops),
                          Classifier.load(smoke_classifier.model_dir).logits(crops))


def test_one_onnx_graph_gives_the_calcium_logit_and_the_grade_as_the_two_graph_path_did(tiny_bundle, tmp_path):
    """The classifier's graph outputs the pooled features too; the head on them gives the grade probabilities
    the separate grade graph (format 2's grade.onnx: the backbone again, then the head) gave, and the logits
    of the logits-only graph; a Screener opens one classifier session, no second backbone."""
    from unittest import mock

    import onnxruntime as ort

    from echoavc.bundle import load_bundle
    from echoavc.classifier.grade import GradeHead
    from echoavc.classifier.grade_model import export_grade_onnx
    from echoavc.classifier.predict import OnnxBackend, load_model
    from echoavc.preprocess.crop import normalise
    from echoavc.screening import Screener

    b = load_bundle(tiny_bundle)
    clf = b.classifier("onnx")
    assert clf.has_features and {o.name for o in clf.backend.session.get_outputs()} == {"logits", "features"}
    crops = np.random.default_rng(1).integers(0, 255, (7, 64, 64), dtype=np.uint8)
    p, features = clf.predict_proba_and_features(crops)
    g = b.grader("onnx", classifier=clf).from_features(features)
    # the previous layout, exported from the same weights: logits-only graph + grade graph
    net, meta = load_model(tiny_bundle / "classifier")
    head = GradeHead.load(tiny_bundle / "classifier")
    old = OnnxBackend(export_grade_onnx(net, head, tmp_path / "grade.onnx")).session
    x = normalise(crops, meta["normalisation"]["mean"], meta["normalisation"]["std"])
    g_old = head_probabilities(old.run(["cumulative_logits"], {"crops": x})[0], head.temperature)
    assert np.abs(g - g_old).max() < 1e-4 and np.allclose(g.sum(axis=1), 1)
    assert np.array_equal(p, clf.predict_proba(crops))  # the binary output is the logits-only path's
    # a Screener with a grade head: detector + classifier sessions, nothing else
    made = []
    real = ort.InferenceSession
    with mock.patch.object(ort, "InferenceSession", lambda *a, **k: made.append(a[0]) or real(*a, **k)):
        screener = Screener(b, "onnx")
    assert sorted(Path(m).name for m in made) == ["detector.onnx", "model.onnx"]
    assert screener.grader.classifier is screener.classifier and screener.grader.session is None
    assert screener.grader.model is None
    runs = []
    session = screener.classifier.backend.session
    with mock.patch.object(session, "run", lambda names, feed: runs.append(names) or real.run(session, names, feed)):
        images = [np.random.default_rng(2).integers(0, 255, (640, 640), dtype=np.uint8)] * 3
        prob, grades = screener.crop_predictions(images, np.array([[200.0, 200, 300, 300]] * 3), grade=True)
    assert runs == [["logits", "features"]]  # one backbone pass for the batch, both outputs
    assert np.isfinite(prob).all() and np.allclose(grades.sum(axis=1), 1)


def head_probabilities(cum_logits, temperature):
    from echoavc.classifier.grade import class_probabilities

    return class_probabilities(np.asarray(cum_logits, float) / temperature)


def test_each_grade_module_imports_first(tmp_path):
    """``train_classifier`` imports the fitting module before the model module: no circular import either way."""
    import subprocess
    import sys

    for mod in ("echoavc.classifier.grade_fit", "echoavc.classifier.grade_model", "echoavc.classifier.grade"):
        r = subprocess.run([sys.executable, "-c", f"import {mod}; from echoavc.classifier.grade import GradeModel, "
                            "fit_grade_head"], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-500:]
