"""The ``echoavc classifier`` and ``echoavc experiments table2|3|4`` commands."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from echoavc.cli import app

runner = CliRunner()


def _data(synthetic_study, tmp_path):
    folder = tmp_path / "table"
    synthetic_study.table.save(folder)
    # the saved table points at the ingest folder by a relative path: keep it resolvable
    synthetic_study.split.save(folder / "split.json")
    return folder


def test_train_evaluate_export_explain(synthetic_study, tmp_path):
    data = _data(synthetic_study, tmp_path)
    model = tmp_path / "model"
    r = runner.invoke(app, ["classifier", "train", "--data", str(data), "--out", str(model), "--preset", "smoke",
                            "--epochs", "1", "--cross-validate", "never", "--threads", "1", "--test-boxes", "3",
                            "--members", "2"])
    assert r.exit_code == 0, r.output
    meta = json.loads((model / "classifier.json").read_text())
    assert meta["settings"]["epochs"] == 1 and meta["calibration_data"]["kind"] == "validation"
    assert meta["members"] == 2  # evaluate, export and explain below read the ensemble as one model
    assert meta["crop"]["test_boxes"] == 3 and meta["crop"]["size"] == 64  # the rest of the preset's crop kept
    r = runner.invoke(app, ["classifier", "evaluate", "--model", str(model), "--data", str(data), "--out",
                            str(tmp_path / "ev"), "--n-boot", "200", "--backend", "onnx"])
    assert r.exit_code == 0, r.output
    assert "recall" in r.output and (tmp_path / "ev" / "report.json").is_file()
    r = runner.invoke(app, ["classifier", "export", "--model", str(model)])
    assert r.exit_code == 0 and (model / "model.onnx").is_file()
    r = runner.invoke(app, ["classifier", "explain", "--model", str(model), "--data", str(data), "--out",
                            str(tmp_path / "cam"), "--n", "2"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "cam").glob("*_gradcam.png"))) == 2


def test_user_errors_are_one_line(tmp_path):
    r = runner.invoke(app, ["classifier", "evaluate", "--model", str(tmp_path), "--data", str(tmp_path), "--out",
                            str(tmp_path / "x")])
    assert r.exit_code == 2 and "not a classifier folder" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["classifier", "train", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                            "--preset", "nope"])
    assert r.exit_code == 2 and "unknown preset" in r.output
    r = runner.invoke(app, ["classifier", "train", "--data", str(tmp_path), "--out", str(tmp_path / "m"),
                            "--preset", "cpu", "--jitter", "0"])  # the cpu preset averages 8 boxes within the jitter
    assert r.exit_code == 2 and "test_boxes above 1 needs jitter > 0" in r.output and "Traceback" not in r.output


def test_an_ensemble_without_a_validation_part_is_a_one_line_error(synthetic_study, tmp_path):
    data = _data(synthetic_study, tmp_path)
    r = runner.invoke(app, ["classifier", "train", "--data", str(data), "--out", str(tmp_path / "m"), "--preset",
                            "smoke", "--epochs", "1", "--threads", "1", "--members", "2", "--cross-validate", "always"])
    assert r.exit_code == 2 and "members > 1 needs a validation part" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m" / "classifier.json").exists()


def test_experiments_table2(synthetic_study, tmp_path):
    data = _data(synthetic_study, tmp_path)
    r = runner.invoke(app, ["experiments", "table2", "--data", str(data), "--preset", "smoke", "--out",
                            str(tmp_path / "t2"), "--n-boot", "200"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t2" / "table2.md").is_file() and (tmp_path / "t2" / "table2.csv").is_file()
    assert "LEAKY" in (tmp_path / "t2" / "table2.md").read_text()


def test_table2_on_a_split_without_test_part_says_what_is_missing(synthetic_study, tmp_path):
    """The demo's split has no test part: say so and what to run, not a numpy reshape error."""
    from echoavc.dataset.split import make_split
    from echoavc.settings import SplitSettings

    data = _data(synthetic_study, tmp_path)
    t = synthetic_study.table
    make_split(t.frame, SplitSettings(train=0.8, val=0.2, test=0.0, k=0), t.fingerprint).save(data / "split.json")
    r = runner.invoke(app, ["experiments", "table2", "--data", str(data), "--preset", "smoke", "--out",
                            str(tmp_path / "t2"), "--rows", "1", "--n-boot", "200"])
    assert r.exit_code == 2, r.output
    line = " ".join(r.output.split())
    assert "split.json: the split has no test part" in line and "--protocol paper" in line, line
    assert "reshape" not in line and not (tmp_path / "t2" / "table2.md").exists()
    r = runner.invoke(app, ["experiments", "table2", "--data", str(data), "--preset", "smoke", "--out",
                            str(tmp_path / "t2"), "--rows", "1", "--n-boot", "200", "--protocol", "paper"])
    assert r.exit_code == 0, r.output
