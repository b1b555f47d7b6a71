"""``echoavc detector ...``: user errors are one line (exit 2); export, predict and evaluate write their files."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from echoavc.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(res, text):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], res.output
    assert "Traceback" not in res.output


def test_train_missing_split_is_one_line(tiny_detector, tmp_path):
    res = _run("detector", "train", "--data", tiny_detector.table_dir, "--split", tmp_path / "nope.json",
               "--out", tmp_path / "run", "--preset", "smoke")
    _one_line_error(res, "no such split file")
    res = _run("detector", "train", "--data", tiny_detector.table_dir, "--out", tmp_path / "run")  # DATA/split.json
    _one_line_error(res, "no such split file")
    res = _run("detector", "train", "--data", tiny_detector.run / "data", "--split", tiny_detector.split_file,
               "--out", tmp_path / "run")  # a materialised YOLO folder has its parts already
    _one_line_error(res, "--split is for a dataset folder")


def test_train_missing_or_mismatched_weights_is_one_line(tiny_detector, tmp_path):
    common = ["detector", "train", "--data", tiny_detector.run / "data", "--out", tmp_path / "run",
              "--preset", "smoke"]
    _one_line_error(_run(*common, "--weights", tmp_path / "missing.pt"), "no such weights file")
    _one_line_error(_run(*common, "--model", "yolo11n", "--weights", tiny_detector.result.best),
                    "weights are a yolov5n model, not yolo11n")
    _one_line_error(_run(*common, "--model", "efficientnet"), "unknown model")


def test_evaluate_and_predict_missing_weights(tiny_detector, tmp_path):
    _one_line_error(_run("detector", "evaluate", "--weights", tmp_path / "x.onnx", "--data", tiny_detector.table_dir,
                         "--split", tiny_detector.split_file, "--out", tmp_path / "ev"), "no such weights file")
    ev = ["detector", "evaluate", "--weights", tmp_path / "x.onnx", "--data", tiny_detector.table_dir,
          "--out", tmp_path / "ev"]
    _one_line_error(_run(*ev), "no such split file")  # the default DATA/split.json; --all for a held-out cohort
    _one_line_error(_run(*ev, "--all", "--split", tiny_detector.split_file), "give --split or --all")
    _one_line_error(_run("detector", "predict", "--weights", tmp_path / "x.onnx", tmp_path, "--out",
                         tmp_path / "p.csv"), "no images found")
    _one_line_error(_run("detector", "export", "--weights", tmp_path / "x.pt"), "no such weights file")


def test_export_predict_evaluate(tiny_detector, tmp_path):
    onnx = tmp_path / "model.onnx"
    res = _run("detector", "export", "--weights", tiny_detector.result.best, "--out", onnx)
    assert res.exit_code == 0, res.output
    assert onnx.is_file() and "ONNX ->" in res.output

    frames = tiny_detector.study.ingested / "frames"
    out_csv = tmp_path / "pred.csv"
    res = _run("detector", "predict", "--weights", onnx, frames, "--out", out_csv, "--conf", "0")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out_csv)
    assert len(df) == len(list(frames.rglob("*.png"))) and df["found"].all()
    assert ((df[["x1", "x2"]] >= 0) & (df[["x1", "x2"]] <= 640)).all().all()
    assert "yolov5nu, from scratch (onnx)" in res.output

    res = _run("detector", "evaluate", "--weights", onnx, "--data", tiny_detector.table_dir, "--split",
               tiny_detector.split_file, "--out", tmp_path / "ev", "--n-boot", "200", "--mean-box-baseline")
    assert res.exit_code == 0, res.output
    for name in ("evaluation.json", "evaluation.md", "predictions.csv"):
        assert (tmp_path / "ev" / name).is_file()
    assert (tmp_path / "ev" / "mean_box_baseline" / "evaluation.json").is_file()
    d = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert d["model_name"] == "yolov5nu, from scratch" and d["part"] == "test"
    assert "map50" in res.output and "mean training box" in res.output


@pytest.mark.parametrize("bad, text", [("--folds", "needs a split with at least 3 folds"),
                                       ("--experiments", "experiments are numbered 1-7")])
def test_table1_errors_are_one_line(tiny_detector, tmp_path, bad, text):
    extra = ["--folds", "3"] if bad == "--folds" else ["--experiments", "9", "--folds", "1"]
    res = _run("experiments", "table1", "--data", tiny_detector.table_dir, "--split", tiny_detector.split_file,
               "--preset", "smoke", "--out", tmp_path / "t1", *extra)
    _one_line_error(res, text)
