"""The network: pooling output shapes for the paper's six backbones, weights from a local file, offline hub."""

from __future__ import annotations

import warnings

import numpy as np
import hashlib

import pytest
import torch

from echoavc.classifier.model import AVCNet, PretrainedWarning, build, create_backbone
from echoavc.errors import EchoAVCError
from echoavc.settings import CLASSIFIER_BACKBONES

# channels of the last feature map (Keras include_top=False): EfficientNetB0 1280, B4 1792, ResNetV2 2048,
# MobileNetV3Small 576, MobileNetV3Large 960
CHANNELS = {"efficientnet_b0": 1280, "efficientnet_b4": 1792, "resnetv2_152": 2048, "resnetv2_50": 2048,
            "mobilenetv3_small_100": 576, "mobilenetv3_large_100": 960}
SIZE = 64  # small input: the big backbones are built once each and stay cheap


@pytest.mark.parametrize("name", CLASSIFIER_BACKBONES)
def test_pooling_shapes_for_every_backbone(name):
    torch.manual_seed(0)
    backbone, source = create_backbone(name, "none")
    assert source == "scratch"
    x = torch.randn(2, 3, SIZE, SIZE)
    c = CHANNELS[name]
    h = w = SIZE // 32
    for pooling in ("none", "max", "avg"):
        model = AVCNet(backbone, pooling, SIZE)  # the backbone is shared: only the head differs
        model.eval()
        with torch.no_grad():
            feats = model.features(x)
            pooled = model.pooled(feats)
            out = model(x)
        assert tuple(feats.shape) == (2, c, h, w)
        assert model.feature_shape == (c, h, w)
        expect = c * h * w if pooling == "none" else c  # none flattens the map, as Keras pooling=None
        assert tuple(pooled.shape) == (2, expect)
        assert model.dense.in_features == expect and model.dense.out_features == 120
        assert model.out.in_features == 120 and model.out.out_features == 1
        assert tuple(out.shape) == (2,)
        if pooling == "max":
            assert torch.allclose(pooled, feats.amax(dim=(2, 3)))
        if pooling == "avg":
            assert torch.allclose(pooled, feats.mean(dim=(2, 3)), atol=1e-6)
        if pooling == "none":
            assert torch.equal(pooled, feats.reshape(2, -1))


def test_none_pooling_dense_layer_follows_input_size():
    small = build("mobilenetv3_small_100", "none", input_size=64)
    large = build("mobilenetv3_small_100", "none", input_size=128)
    assert small.dense.in_features == 576 * 2 * 2
    assert large.dense.in_features == 576 * 4 * 4
    assert build("mobilenetv3_small_100", "avg", input_size=128).dense.in_features == 576


def test_head_is_dense_relu_logit():
    m = build("mobilenetv3_small_100", "avg", input_size=64)
    assert isinstance(m.act, torch.nn.ReLU)
    names = [n for n, _ in m.named_children()]
    assert names.index("dense") < names.index("act") < names.index("out")


def test_local_weights_file_is_loaded(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ref, _ = create_backbone("mobilenetv3_small_100", "none")
    path = tmp_path / "mnv3s.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    torch.manual_seed(2)  # a different random init, so equality means the file was read
    model = build("mobilenetv3_small_100", "avg", pretrained_path=path, input_size=64)
    assert model.weights_source == f"file:{path}"
    assert model.starting_weights["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for k, v in ref.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k


def test_missing_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(EchoAVCError, match="not found"):
        build("mobilenetv3_small_100", "avg", pretrained_path=tmp_path / "nope.pth", input_size=64)


def test_auto_without_cached_weights_is_scratch_with_a_warning_and_no_network(monkeypatch, tmp_path):
    import netguard

    monkeypatch.setenv("ECHOAVC_CACHE", str(tmp_path))  # an empty weights cache
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even "online", building a model asks no hub
    with pytest.warns(PretrainedWarning, match="echoavc weights fetch mobilenetv3_small_100"):
        m = build("mobilenetv3_small_100", "avg", pretrained="auto", input_size=64)
    assert m.weights_source == "scratch" and m.starting_weights == {"from": "scratch"}
    assert netguard.attempts == []
    assert build("mobilenetv3_small_100", "avg", input_size=64).weights_source == "scratch"  # the default
    with pytest.raises(EchoAVCError, match="echoavc weights fetch"):
        build("mobilenetv3_small_100", "avg", pretrained="hub", input_size=64)


def test_unknown_backbone_and_pooling():
    with pytest.raises(EchoAVCError, match="unknown timm backbone"):
        build("no_such_net", "avg")
    with pytest.raises(EchoAVCError, match="pooling"):
        build("mobilenetv3_small_100", "mean", input_size=64)
