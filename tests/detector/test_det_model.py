"""Model names, weights resolution under the offline rules, and refusing a checkpoint of another model."""

from __future__ import annotations

import pytest

from echoavc.detector import model as M
from echoavc.errors import EchoAVCError


@pytest.mark.parametrize("name, built, yaml", [
    ("yolov5s", "yolov5su", "yolov5s.yaml"), ("yolov5n", "yolov5nu", "yolov5n.yaml"),
    ("yolo11n", "yolo11n", "yolo11n.yaml"), ("yolo11s.yaml", "yolo11s", "yolo11s.yaml"),
    ("yolov5su", "yolov5su", "yolov5s.yaml"), ("yolov5nu.pt", "yolov5nu", "yolov5n.yaml"),
])
def test_names_are_the_model_as_built(name, built, yaml):
    assert M.built_name(name) == built
    assert M.yaml_name(name) == yaml
    assert M.describe(name, M.WeightsChoice(None, "from scratch")) == f"{built}, from scratch"


def test_unknown_model_is_one_line_error():
    with pytest.raises(EchoAVCError, match="unknown model 'resnet50'"):
        M.parse_model("resnet50")


def test_weights_resolution_never_touches_the_network(monkeypatch, tmp_path):
    import netguard

    monkeypatch.delenv("ECHOAVC_OFFLINE", raising=False)  # even "online": only `echoavc weights fetch` downloads
    monkeypatch.setenv("ECHOAVC_CACHE", str(tmp_path))
    c = M.resolve_weights("yolov5s")
    assert c.from_scratch and c.origin == "from scratch" and c.warning is None  # the default: none, no warning
    c = M.resolve_weights("yolov5s", None, "auto")  # nothing cached: from scratch, saying how to get weights
    assert c.from_scratch and "echoavc weights fetch yolov5s" in c.warning and str(tmp_path) in c.warning
    assert netguard.attempts == []
    with pytest.raises(EchoAVCError, match="no weights named 'coco'.*echoavc weights fetch coco"):
        M.resolve_weights("yolov5s", None, "coco")


def test_cached_pretrained_weights_are_used(monkeypatch, tmp_path, tiny_detector):
    monkeypatch.setenv("ECHOAVC_CACHE", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "yolov5nu.pt").write_bytes(tiny_detector.result.best.read_bytes())
    c = M.resolve_weights("yolov5n", None, "auto")
    assert c.path == tmp_path / "weights" / "yolov5nu.pt"
    assert M.describe("yolov5n", c) == "yolov5nu, from COCO weights yolov5nu.pt"


def test_local_weights_named_and_checked(tiny_detector):
    best = tiny_detector.result.best
    c = M.resolve_weights("yolov5n", best)
    assert c.path == best and M.describe("yolov5n", c) == f"yolov5nu, from {best}"
    info = M.checkpoint_info(best)
    assert info["model"] == "yolov5n" and info["nc"] == 1
    assert info["echoavc"]["model_name"] == "yolov5nu, from scratch"


def test_mismatched_model_is_refused(tiny_detector):
    with pytest.raises(EchoAVCError, match="weights are a yolov5n model, not yolo11n"):
        M.resolve_weights("yolo11n", tiny_detector.result.best)
    with pytest.raises(EchoAVCError, match="not yolov5su"):
        M.resolve_weights("yolov5s", tiny_detector.result.best)  # same family, other scale


def test_not_a_checkpoint_is_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(EchoAVCError, match="not a readable PyTorch checkpoint"):
        M.resolve_weights("yolov5n", junk)
    with pytest.raises(EchoAVCError, match="no such weights file"):
        M.resolve_weights("yolov5n", tmp_path / "missing.pt")
