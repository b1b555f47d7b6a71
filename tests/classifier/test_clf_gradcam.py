"""Grad-CAM highlights what drives the logit (toy model), and overlays are written for a trained model."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from echoavc.classifier.gradcam import grad_cam, save_overlay


class Toy(nn.Module):
    """Two feature channels: channel 0 sees the top-left blob, channel 1 the bottom-right one; only channel 0
    reaches the logit."""

    def features(self, x):
        return x  # identity "backbone": the map is the input

    def head(self, f):
        return f[:, 0].mean(dim=(1, 2)) * 5.0 + f[:, 1].mean(dim=(1, 2)) * 0.0

    def forward(self, x):
        return self.head(self.features(x))


def test_toy_cam_highlights_the_region_that_drives_the_logit():
    x = torch.zeros(1, 2, 32, 32)
    x[0, 0, 2:10, 2:10] = 1.0     # the evidence
    x[0, 1, 20:30, 20:30] = 1.0   # a distractor the head ignores
    cam, logit = grad_cam(Toy(), x)
    assert cam.shape == (32, 32) and cam.max() == 1.0
    assert cam[2:10, 2:10].mean() > 0.9
    assert cam[20:30, 20:30].max() < 0.05
    assert logit > 0


def test_layer_hook_gives_the_same_map_as_features():
    torch.manual_seed(0)
    from echoavc.classifier.model import build

    m = build("mobilenetv3_small_100", "avg", input_size=64)
    x = torch.randn(1, 3, 64, 64)
    a, za = grad_cam(m, x)
    # the last module of forward_features for timm MobileNetV3 is blocks
    b, zb = grad_cam(m, x, layer=m.backbone.blocks)
    assert np.isclose(za, zb)
    assert np.allclose(a, b, atol=1e-5)


def test_overlays_for_a_trained_model(smoke_classifier, tmp_path):
    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.gradcam import explain
    from echoavc.classifier.predict import Classifier

    clf = Classifier.load(smoke_classifier.model_dir)
    samples = [s for s in load_samples(smoke_classifier.table, smoke_classifier.split) if s.part == "test"][:2]
    crops = CropSource(smoke_classifier.table, clf.crop, clf.noise_reduction).batch(samples)
    rows = explain(clf, crops, tmp_path)
    assert len(rows) == 2
    for r in rows:
        img = cv2.imread(r["overlay"])
        assert img is not None and img.shape[1] == 2 * clf.crop.size
        assert 0.0 <= r["probability"] <= 1.0


def test_save_overlay_writes_png(tmp_path):
    crop = np.zeros((40, 40), np.uint8)
    cam = np.zeros((40, 40), np.float32)
    cam[5:10, 5:10] = 1
    p = save_overlay(tmp_path / "x.png", crop, cam, "P=0.9")
    img = cv2.imread(str(p))
    assert img.shape[:2] == (58, 80)
    assert img[7, 47, 2] > img[30, 70, 2]  # red (JET hot) where the map is high
