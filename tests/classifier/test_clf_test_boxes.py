"""Test boxes: one probability is the mean logit over the box and fixed shifts of it, the same in training
(calibration and threshold), in `classifier evaluate` and in screening; the grade head reads the box itself."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from echoavc.classifier.data import CropSource, load_samples
from echoavc.classifier.predict import Classifier, average_per_box
from echoavc.errors import EchoAVCError
from echoavc.preprocess.crop import averaged_boxes
from echoavc.settings import CropSettings, classifier_preset

N = 4


def test_the_boxes_are_fixed_the_box_first_and_within_the_jitter():
    box = (100.0, 120.0, 220.0, 200.0)
    assert np.allclose(averaged_boxes(box, 1, 0.1), [box])
    b = averaged_boxes(box, 16, 0.1)
    assert np.array_equal(b, averaged_boxes(box, 16, 0.1)) and np.allclose(b[0], box)
    assert np.allclose(averaged_boxes(box, 8, 0.1), b[:8])  # fewer boxes are a prefix of more
    w, h = 120.0, 80.0
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    assert np.all(np.abs(cx - 160) <= 0.1 * w + 1e-9) and np.all(np.abs(cy - 160) <= 0.1 * h + 1e-9)
    scale = (b[:, 2] - b[:, 0]) / w
    assert np.all(np.abs(scale - 1) <= 0.1 + 1e-9) and np.allclose((b[:, 3] - b[:, 1]) / h, scale)
    assert len({tuple(np.round(r, 3)) for r in b}) == 16  # every box differs


@pytest.mark.parametrize("kw, why", [({"test_boxes": 0}, "1 to 32"), ({"test_boxes": 33, "jitter": 0.1}, "1 to 32"),
                                     ({"test_boxes": 4, "jitter": 0.0}, "jitter > 0")])
def test_bad_test_box_settings_are_refused(kw, why):
    with pytest.raises(EchoAVCError, match=why):
        CropSettings(**kw)


@pytest.fixture(scope="module")
def boxed(synthetic_study, tmp_path_factory):
    """The smoke preset trained with 4 test boxes."""
    from echoavc.classifier.train import train_classifier

    # calibrated on the validation part (not out-of-fold), so the test can recompute what it was fitted on
    s = classifier_preset("smoke", threads=1, crop={"size": 64, "margin": 0.1, "jitter": 0.1, "test_boxes": N},
                          cross_validate="never")
    out = tmp_path_factory.mktemp("boxed") / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = train_classifier(synthetic_study.table, synthetic_study.split, out, s)
    return out, trained


def _frame(table, sample):
    return cv2.imread(str(table.image_file(sample.image_path)), cv2.IMREAD_GRAYSCALE)


def test_a_probability_is_the_calibrated_mean_logit_of_the_boxes(boxed, synthetic_study):
    out, _ = boxed
    clf = Classifier.load(out)
    assert json.loads((out / "classifier.json").read_text())["crop"]["test_boxes"] == N
    assert clf.boxes_per_probability == N
    sample = load_samples(synthetic_study.table)[0]
    image = _frame(synthetic_study.table, sample)
    crops = clf.box_crops(image, sample.box)
    assert crops.shape == (N, 64, 64) and np.array_equal(crops[0], clf.prepare(image, sample.box))
    z = clf.logits(crops)
    assert np.ptp(z) > 0  # the boxes see different pixels
    p = clf.predict_proba(crops, per_box=N)
    assert p.shape == (1,) and abs(p[0] - clf.calibration(np.array([z.mean()]))[0]) < 1e-7
    # (the smoke network's logits are small and close together: hence the absolute tolerances)
    assert abs(p[0] - clf.predict_proba(crops[:1])[0]) > 1e-6
    with pytest.raises(EchoAVCError, match="whole runs"):
        average_per_box(z[:3], N)


def test_training_calibrates_on_the_mean_logits_and_evaluate_reads_them(boxed, synthetic_study, tmp_path):
    import pandas as pd

    from echoavc.classifier.evaluate import evaluate_classifier

    out, trained = boxed
    clf = Classifier.load(out)
    parts = load_samples(synthetic_study.table, synthetic_study.split)
    source = CropSource(synthetic_study.table, clf.crop, clf.noise_reduction)
    val = [s for s in parts if s.part == "val"]
    assert trained.meta["calibration_data"]["kind"] == "validation"
    # calibration and threshold were fitted on one mean logit per validation crop
    assert np.allclose(trained.cal_logits, average_per_box(clf.logits(source.test_batch(val)), N), rtol=0, atol=1e-6)
    assert not np.allclose(trained.cal_logits, clf.logits(source.batch(val)), rtol=0, atol=1e-5)
    test = [s for s in parts if s.part == "test"]
    batch = source.test_batch(test)
    assert batch.shape[0] == N * len(test) and np.array_equal(batch[::N], source.batch(test))
    evaluate_classifier(clf, synthetic_study.table, synthetic_study.split, "test", out=tmp_path, baseline=False,
                        n_boot=50)
    got = pd.read_csv(tmp_path / "predictions.csv", dtype={"key": str}).set_index("key")["probability"]
    want = clf.predict_proba(batch, per_box=N)
    assert np.allclose([got[s.key] for s in test], want, rtol=0, atol=1e-7)
    assert not np.allclose(want, clf.predict_proba(batch[::N]), rtol=0, atol=1e-6)


def test_screening_averages_the_boxes_and_grades_the_box_itself(boxed, synthetic_study, tiny_detector, tmp_path):
    from echoavc.bundle import load_bundle, save_bundle
    from echoavc.screening.core import Screener
    from echoavc.settings import IngestSettings, ScreeningSettings

    out, _ = boxed
    b = load_bundle(save_bundle(tmp_path / "bundle", detector_weights=tiny_detector.result.best, classifier_dir=out,
                                ingest=IngestSettings(), screening=ScreeningSettings(), exam_threshold=0.5))
    assert json.loads((b.folder / "classifier" / "classifier.json").read_text())["crop"]["test_boxes"] == N
    assert f"mean over {N} boxes" in (b.folder / "MODEL_CARD.md").read_text()
    samples = load_samples(synthetic_study.table)[:3]
    images = [_frame(synthetic_study.table, s) for s in samples]
    boxes = np.array([s.box for s in samples] + [[np.nan] * 4])
    screener = Screener(b, "torch")
    p, g = screener.crop_predictions(images + [images[0]], boxes, grade=screener.grader is not None)
    clf = screener.classifier
    want = [clf.predict_proba(clf.box_crops(im, s.box), per_box=N)[0] for im, s in zip(images, samples)]
    assert np.allclose(p[:3], want, rtol=0, atol=1e-7) and np.isnan(p[3])
    assert not np.allclose(p[:3], [clf.predict_proba(clf.box_crops(im, s.box)[:1])[0] for im, s in zip(images, samples)],
                           rtol=0, atol=1e-6)
    alone_p, _ = screener.crop_predictions(images + [images[0]], boxes)  # without the grade head's pass
    assert np.array_equal(np.isnan(alone_p), np.isnan(p)) and np.allclose(alone_p[:3], want, rtol=0, atol=1e-7)
    if g is not None:
        alone = screener.grader.predict_proba(np.stack([clf.prepare(im, s.box) for im, s in zip(images, samples)]))
        assert np.allclose(g[:3], alone, atol=1e-5)
