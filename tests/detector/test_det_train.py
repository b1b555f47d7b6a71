"""Training: weights and a metrics file naming the model as built, explicit Ultralytics settings, threads back,
everything under the run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from echoavc.detector.model import WeightsChoice
from echoavc.detector.train import read_data_yaml, train, ultralytics_args
from echoavc.errors import EchoAVCError
from echoavc.settings import DETECTOR_PRESETS, detector_preset


def test_run_folder_has_weights_and_metrics(tiny_detector):
    res = tiny_detector.result
    assert res.best.is_file() and res.last.is_file()
    assert res.best.is_relative_to(tiny_detector.run)
    info = json.loads(res.metrics_file.read_text())
    assert info["model_name"] == res.model_name == "yolov5nu, from scratch"
    assert info["built_from"] == "yolov5n.yaml"
    assert info["epochs_run"] == DETECTOR_PRESETS["smoke"].epochs == len(info["epochs"])
    assert info["images"]["train"] > 0 and info["seconds_per_image_epoch"] > 0
    hw = info["hardware"]  # what the run's timings were measured on
    assert hw["cores"] >= 1 and hw["cpu"] and hw["torch"] and hw["ultralytics"]
    assert info["materialised"]["checks"]["patients_in_several_parts"] == 0
    # background frames (other views) are in the training folder with empty labels
    labels = tiny_detector.run / "data" / "labels" / "train"
    empty = [p for p in labels.glob("*.txt") if p.read_text().strip() == ""]
    assert empty and info["materialised"]["counts"]["train"]["background"] == len(empty)
    ckpt = torch.load(res.best, map_location="cpu", weights_only=False)
    assert ckpt["echoavc"]["model_name"] == "yolov5nu, from scratch"


def test_everything_written_under_the_run_folder(tiny_detector):
    args = tiny_detector.result.info["ultralytics_args"]
    assert Path(args["project"]) == tiny_detector.run.resolve()
    assert not (Path.cwd() / "runs" / "detect").exists()
    cfg = Path(os.environ["YOLO_CONFIG_DIR"])
    assert cfg.is_relative_to(Path(os.environ.get("ECHOAVC_CACHE") or Path.home() / ".cache" / "echoavc"))


def test_ultralytics_settings_explicit():
    off = ultralytics_args(detector_preset("paper"), Path("d.yaml"), Path("o"), "0", WeightsChoice(None, "from scratch"))
    assert off["amp"] is False and off["plots"] is False and off["val"] is True and off["deterministic"] is True
    assert off["pretrained"] is False and off["imgsz"] == 640 and off["batch"] == 32 and off["epochs"] == 75
    for k in ("mosaic", "fliplr", "flipud", "hsv_h", "hsv_s", "hsv_v", "scale", "translate", "degrees", "mixup"):
        assert off[k] == 0.0, k
    assert off["close_mosaic"] == 0
    on = ultralytics_args(detector_preset("paper", online_augment=True), Path("d.yaml"), Path("o"), "cpu",
                          WeightsChoice(Path("w.pt"), "from w.pt"))
    assert on["mosaic"] == 1.0 and on["scale"] > 0 and on["translate"] > 0 and on["pretrained"] == "w.pt"
    assert on["fliplr"] == 0.0  # echo views have a fixed orientation


def test_presets():
    p, c, s = (DETECTOR_PRESETS[k] for k in ("paper", "cpu", "smoke"))
    assert (p.model, p.imgsz, p.batch, p.epochs, p.online_augment) == ("yolov5s", 640, 32, 75, False)
    assert c.model == "yolov5n" and c.imgsz < 640
    assert s.epochs <= 3
    with pytest.raises(ValueError, match="unknown detector preset"):
        detector_preset("huge")


def test_data_yaml_errors(tmp_path):
    with pytest.raises(EchoAVCError, match="no data.yaml"):
        read_data_yaml(tmp_path)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnc: 1\n")
    with pytest.raises(EchoAVCError, match="does not exist"):
        read_data_yaml(tmp_path / "data.yaml")


def test_fine_tune_from_earlier_run_is_named_so(tiny_detector, tmp_path, capfd):
    import logging

    from ultralytics.utils import LOGGER

    from testkit import ultralytics_records

    level = LOGGER.level
    with ultralytics_records() as records:
        res = train(tiny_detector.run / "data", tmp_path / "ft", detector_preset("smoke", epochs=1, cache=True),
                    weights=tiny_detector.result.best)
    said = "".join(capfd.readouterr()) + "".join(r.getMessage() for r in records)
    # without verbose, Ultralytics' settings dump, model table and per-batch bars stay out of the user's terminal,
    # and so does its image-caching bar, which ignores the log level (it writes to stdout)
    assert "engine/trainer" not in said and "box_loss" not in said and "summary" not in said, said[:500]
    assert all(r.levelno >= logging.WARNING for r in records), said[:500]
    assert "Caching images" not in said, said[:500]
    # with the data loaded in process (the smoke preset's workers=0) RAM caching is repeatable: no warning of it
    assert "non-deterministic" not in said, said[:500]
    assert LOGGER.level == level
    assert res.model_name == f"yolov5nu, from {tiny_detector.result.best}"
    assert torch.get_num_threads() == len(os.sched_getaffinity(0))  # Ultralytics drops it; it is restored
    assert json.loads(res.metrics_file.read_text())["weights_origin"] == f"from {tiny_detector.result.best}"
