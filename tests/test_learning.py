"""The models learn: a model that learned nothing fails here.

``echoavc train``'s function (cpu presets, briefly: fewer epochs) on a small synthetic study, judged on patients of
another seed it never saw:

- the classifier separates grade >= 2 from normal valves (AUROC on the annotated boxes), and the same run with the
  training labels flipped does not (so this test can fail, and shows it inside itself);
- the detector finds the valve (recall at IoU 0.5) far better than the mean training box;
- ``predict`` with the bundle's own thresholds (0.25 / 0.5, not zero) decides most valve-view frames and calls most
  other-view frames "no valve".

Limits sit inside the measured values (comments at each assertion). The run is deterministic: fixed pseudonym keys
(the patient split follows the pseudonyms) and one torch thread. Before that was fixed, runs with random keys gave
classifier AUROCs of 0.57-0.94 (runs A-D below were made that way; D failed the AUROC limit). Run E was this file
with 25 detector epochs: 607 s wall for the three tests on the 2-core machine, other tests running on the second
core (studies 61 s, train_bundle 430 s, flipped classifier 59 s, predict 28 s); run F, with the cpu preset's 40,
487 s (train_bundle 382 s, another benchmark on the second core). With 25 epochs the same seeds and keys gave 42/60
decided on earlier machines and 22/60 on a newer one (a different CPU, whose float sums differ, is the likely
cause), so the limits must hold with margin anywhere.
Not marked slow: the default ``python -m pytest -q`` (CI) runs it.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import replace

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

TRAIN_PATIENTS, TRAIN_SEED = 40, 41  # 320 frames: 200 valve (150 train / 50 validation), 120 other views
HELDOUT_PATIENTS, HELDOUT_SEED = 12, 42  # 96 frames: 60 valve, 36 other views
FRAMES_PER_EXAM = 8
CLASSIFIER_EPOCHS = 30  # the cpu preset's own count, without early stopping (patience 0)
# the cpu preset's own count; 25 decided 42/60 valve frames on one machine and 22/60 on another (a Xeon with
# AVX-512), 12 left it unready (held-out recall 0.23, 7/60 frames decided)
DETECTOR_EPOCHS = 40

TIMING: dict[str, float] = {}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    from echoavc.synth.study import make_study

    root = tmp_path_factory.mktemp("learning")
    # fixed keys: the patient split follows the pseudonyms, and a fresh random key per run put other patients in
    # training each time (held-out AUROC 0.57-0.94 over identical seeds); with these the run is the same each time
    for name, secret in (("train", "41" * 16), ("heldout", "42" * 16)):
        (root / name / "keys").mkdir(parents=True)
        (root / name / "keys" / "echoavc.key").write_text(secret + "\n")
    t0 = time.perf_counter()
    table, split, _ = make_study(root / "train", TRAIN_PATIENTS, TRAIN_SEED, frames_per_exam=FRAMES_PER_EXAM,
                                 train=0.75, val=0.25, test=0.0, prevalence=0.5)
    held, _, _ = make_study(root / "heldout", HELDOUT_PATIENTS, HELDOUT_SEED, frames_per_exam=FRAMES_PER_EXAM,
                            train=0.0, val=0.0, test=1.0, prevalence=0.5)
    TIMING["studies"] = time.perf_counter() - t0
    return root, table, split, held


def _threads() -> int:
    """One torch thread, always: another count changes the order of the sums, and so the trained models (seed 0
    of the classifier study gave 0.831 with every core and 0.773 with one); one thread also never waits on a
    busy neighbour."""
    return 1


def _settings():
    from echoavc.settings import classifier_preset, detector_preset

    threads = _threads()
    clf = classifier_preset("cpu", epochs=CLASSIFIER_EPOCHS, patience=0, cross_validate="never", threads=threads)
    det = detector_preset("cpu", epochs=DETECTOR_EPOCHS, threads=threads, workers=0)
    return clf, det


@pytest.fixture(scope="module")
def bundle(studies):
    from echoavc.bundle import load_bundle
    from echoavc.train import train_bundle

    root, _, _, _ = studies
    clf, det = _settings()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = train_bundle(root / "train" / "table", root / "bundle", "cpu", detector=det, classifier=clf,
                            onnx=False, progress=False, log=lambda m: None)  # no ONNX exports: CPU time
    TIMING["train_bundle"] = time.perf_counter() - t0
    TIMING["threads"] = clf.threads
    return load_bundle(path)


def _heldout_auroc(classifier, held) -> tuple[float, int, int]:
    """Grade >= 2 vs normal on the held-out valve frames, crops from the annotated boxes (grade 1 left out)."""
    f = held.frame[(held.frame["role"] == "valve") & held.frame["grade"].isin([0, 2, 3])]
    crops = np.stack([classifier.prepare(cv2.imread(str(held.image_file(p)), cv2.IMREAD_GRAYSCALE), box)
                      for p, box in zip(f["image_path"], f[["x1", "y1", "x2", "y2"]].to_numpy(float))])
    y = (f["grade"].to_numpy(int) >= 2).astype(int)
    return float(roc_auc_score(y, classifier.predict_proba(crops))), len(y), int(y.sum())


def test_classifier_learns_and_flipped_labels_do_not(studies, bundle, record_property):
    from echoavc.classifier.predict import Classifier
    from echoavc.classifier.train import train_classifier

    root, table, split, held = studies
    auroc, n, pos = _heldout_auroc(bundle.classifier("torch"), held)
    # the same training with every calcified label flipped: the test must be able to fail
    flipped = copy.copy(table)
    flipped.frame = table.frame.copy()
    labelled = flipped.frame["calcified"].notna()
    flipped.frame.loc[labelled, "calcified"] = 1 - flipped.frame.loc[labelled, "calcified"]
    flipped.frame["grade"] = np.nan  # the true grades would teach the severity through the grade loss
    clf, _ = _settings()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_classifier(flipped, split, root / "flipped", clf)
    TIMING["flipped_classifier"] = time.perf_counter() - t0
    auroc_flipped, _, _ = _heldout_auroc(Classifier.load(root / "flipped"), held)
    print(f"held-out grade>=2 vs normal AUROC {auroc:.3f} (n {n}, {pos} grade >= 2); flipped labels "
          f"{auroc_flipped:.3f}; timing {TIMING}")
    record_property("auroc", round(auroc, 4))  # in --junitxml reports: the measured values
    record_property("auroc_flipped", round(auroc_flipped, 4))
    # measured (n 60, 30 grade >= 2): run E (fixed keys, 1 thread: this file) 0.813 / flipped 0.339; with random
    # keys run A 0.922 / 0.186, B 0.772 / 0.209, C 0.800 / 0.153, D 0.573 / 0.347. Flipped labels learn the
    # inverse, so below chance.
    assert auroc >= 0.65, auroc
    assert auroc_flipped <= 0.45, auroc_flipped
    assert auroc - auroc_flipped >= 0.3, (auroc, auroc_flipped)


def test_detector_finds_the_valve_far_better_than_the_mean_box(studies, bundle, record_property):
    from echoavc.detector.evaluate import MeanBoxPredictor, evaluate, training_boxes

    _, table, split, held = studies
    det = evaluate(bundle.detector("torch"), held, None, n_boot=200)
    mean_box = evaluate(MeanBoxPredictor(training_boxes(table, split)), held, None, n_boot=200)
    recall, base = det["metrics"]["recall"].estimate, mean_box["metrics"]["recall"].estimate
    print(f"held-out recall at IoU 0.5: detector {recall:.3f}, mean box {base:.3f} ({det['n_with_valve']} valve "
          f"frames); false detections {det['metrics']['false_detection_rate'].estimate:.3f}")
    record_property("recall", round(recall, 4))
    record_property("recall_mean_box", round(base, 4))
    # measured (60 valve frames): run E 0.950 vs mean box 0.083 (no false detection); run B 0.950 vs mean box 0.100 (no false detection on 36 other-view frames),
    # run C 0.833 vs 0.083; run A (12 epochs, too few) 0.233 vs 0.083, which these limits reject
    assert recall >= 0.7, recall
    assert recall >= base + 0.4, (recall, base)


def test_predict_with_the_bundles_own_thresholds(studies, bundle, tmp_path, record_property):
    from echoavc.demo import evaluate_frames
    from echoavc.predict import predict

    root, _, _, _ = studies
    s = bundle.screening
    assert (s.valve_conf, s.decide_conf) == (0.25, 0.5)  # the real gates, not the fixtures' zero
    t0 = time.perf_counter()
    # every frame, as these limits were measured (the bundle's frame policy screens closed valves only: docs/phase.md)
    rep = predict([root / "heldout" / "cohort" / "dicom"], bundle.folder, tmp_path / "screen", progress=False,
                  settings=replace(s, frames="all"))
    TIMING["predict"] = time.perf_counter() - t0
    assert not rep.failures, rep.failures
    fr = evaluate_frames(rep.frames, root / "heldout" / "cohort")
    print(f"valve view decided {fr['valve_view_decided']['count']}, other views 'no valve' "
          f"{fr['other_views_no_valve']['count']}; statuses {fr['statuses']}; timing {TIMING}")
    record_property("valve_view_decided", fr["valve_view_decided"]["count"])
    record_property("other_views_no_valve", fr["other_views_no_valve"]["count"])
    record_property("timing", {k: round(v, 1) for k, v in TIMING.items()})
    # measured: run F (40 detector epochs, a Xeon with AVX-512, 2026-11-30) 48/60 decided (12 low confidence),
    # 35/36 "no valve"; the same machine with 25 epochs 22/60 (22 low confidence), which the first limit rejects;
    # run E 42/60 decided (16 low confidence), 36/36 "no valve"; run B 42/60 valve-view frames decided (16 low
    # confidence, 2 no valve), 36/36 other views "no valve"; run C 38/60 and 35/36; run A (12 detector epochs)
    # 7/60 and 36/36, which the first limit rejects
    assert fr["valve_view_decided"]["value"] >= 0.5, fr
    assert fr["other_views_no_valve"]["value"] >= 0.8, fr
