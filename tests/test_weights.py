"""Starting weights: from scratch unless asked; ``echoavc weights fetch | import | list``; the record in the bundle.

Nothing here downloads: ``fetch`` is tested on its offline paths (the socket guard, tests/netguard.py, fails any
test that reaches the network)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from typer.testing import CliRunner

import netguard
from echoavc import weights as W
from echoavc.cli import app
from echoavc.errors import EchoAVCError
from echoavc.settings import CLASSIFIER_PRESETS, DETECTOR_PRESETS, ClassifierSettings, DetectorSettings, \
    classifier_preset


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ECHOAVC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def one_line_error(res, *fragments):
    """A user error: exit 2, one line naming the problem, no traceback."""
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_every_default_and_preset_starts_from_scratch():
    assert ClassifierSettings().pretrained == "none" and DetectorSettings().pretrained == "none"
    assert all(classifier_preset(p).pretrained == "none" for p in CLASSIFIER_PRESETS)
    assert all(d.pretrained == "none" for d in DETECTOR_PRESETS.values())


@pytest.mark.parametrize("name, host, as_name", [("mobilenetv3_small_100", "huggingface.co", "mobilenetv3_small_100"),
                                                 ("yolov5n", "github.com", "yolov5nu")])  # the file "auto" looks for
def test_fetch_offline_is_a_one_line_error_without_any_connection(cache, monkeypatch, name, host, as_name):
    monkeypatch.setenv("ECHOAVC_OFFLINE", "1")
    res = CliRunner().invoke(app, ["weights", "fetch", name])
    one_line_error(res, f"cannot fetch {name}:", "offline", f"echoavc weights import FILE {as_name}`")
    assert netguard.attempts == []  # not even the connection test
    # online as far as the settings go, but no route: the one short connection test fails, one line
    monkeypatch.delenv("ECHOAVC_OFFLINE")

    def unreachable(address, timeout=None):
        assert address == (host, 443) and timeout <= 5
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(W.socket, "create_connection", unreachable)
    one_line_error(CliRunner().invoke(app, ["weights", "fetch", name]), f"{host} cannot be reached")
    assert not cache.exists() or not any(cache.iterdir())


def test_fetch_tries_only_its_host_and_only_when_asked(cache, monkeypatch):
    """With the guard as the network, the one attempt fetch makes is to the hub it names, and it is refused
    before a packet leaves."""
    monkeypatch.delenv("ECHOAVC_OFFLINE", raising=False)
    try:
        with pytest.raises(netguard.NetworkBlocked, match="huggingface.co"):
            W.fetch("mobilenetv3_small_100")
    finally:
        tried, netguard.attempts[:] = list(netguard.attempts), []
    assert tried == [("look up", "huggingface.co:443")]


def test_unknown_name_is_refused(cache):
    one_line_error(CliRunner().invoke(app, ["weights", "fetch", "no_such_net"]), "unknown weights name 'no_such_net'")


def test_import_list_and_use_a_backbone_file(cache, tmp_path):
    from echoavc.classifier.model import build, create_backbone

    torch.manual_seed(3)
    ref, _ = create_backbone("mobilenetv3_small_100", "none")
    src = tmp_path / "imagenet_mnv3.pth"
    torch.save(ref.state_dict(), src)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    res = CliRunner().invoke(app, ["weights", "import", str(src), "mnv3_in1k"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["weights", "list"])
    assert res.exit_code == 0
    (row,) = [line.split("\t") for line in res.output.strip().splitlines()]
    assert row[:3] == ["mnv3_in1k", f"file:{src.resolve()}", sha]
    torch.manual_seed(4)
    m = build("mobilenetv3_small_100", "avg", pretrained="mnv3_in1k", input_size=64)
    for k, v in ref.state_dict().items():
        assert torch.equal(m.backbone.state_dict()[k], v), k
    assert m.starting_weights == {"from": "file", "file": str(cache / "mnv3_in1k.pth"), "sha256": sha,
                                  "name": "mnv3_in1k", "source": f"file:{src.resolve()}"}
    assert W.describe_start(m.starting_weights).startswith(f"started from mnv3_in1k, file:{src.resolve()} "
                                                           f"(sha256 {sha[:16]}")


def test_import_errors_are_one_line(cache, tmp_path):
    one_line_error(CliRunner().invoke(app, ["weights", "import", str(tmp_path / "nope.pth"), "x"]),
                   "nope.pth", "no such weights file")
    bad = tmp_path / "w.txt"
    bad.write_text("x")
    one_line_error(CliRunner().invoke(app, ["weights", "import", str(bad), "x"]), "unknown weights file type")
    with pytest.raises(EchoAVCError, match="no weights named 'missing'"):
        W.resolve_file("missing")


def test_detector_starts_from_an_imported_checkpoint(cache, tiny_detector):
    from echoavc.detector import model as M

    W.import_file(tiny_detector.result.best, "my_yolo")
    c = M.resolve_weights("yolov5n", None, "my_yolo")
    assert c.path == cache / "my_yolo.pt" and M.describe("yolov5n", c) == "yolov5nu, from my_yolo.pt"
    with pytest.raises(EchoAVCError, match="not yolo11n"):
        M.resolve_weights("yolo11n", None, "my_yolo")


def test_bundle_records_scratch_starts_in_json_and_model_card(tiny_bundle):
    meta = json.loads((tiny_bundle / "bundle.json").read_text())
    assert meta["detector"]["starting_weights"] == {"from": "scratch"}
    assert meta["classifier"]["starting_weights"] == {"from": "scratch"}
    card = (tiny_bundle / "MODEL_CARD.md").read_text()
    assert card.count("trained from scratch") == 2
