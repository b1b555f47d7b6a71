"""Settings: one way back from JSON (``from_dict``), allowed values checked on construction, and the CLI's
defaults read from the dataclasses."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import typer

from echoavc.cli import app
from echoavc.errors import EchoAVCError
from echoavc.settings import (
    ClassifierSettings, CropSettings, DatasetSettings, DetectorSettings, IngestSettings,
    ScreeningSettings, SynthSettings, classifier_preset, detector_preset, from_dict,
)


def _json(settings) -> dict:
    return json.loads(json.dumps(asdict(settings)))


@pytest.mark.parametrize("settings", [
    IngestSettings(modalities=("US", "OT"), size=320), ClassifierSettings(), classifier_preset("cpu"),
    detector_preset("smoke"), ScreeningSettings(exam_aggregate="max", batch=4), DatasetSettings(),
    SynthSettings(grade_weights=(0.5, 0.3, 0.2)),
], ids=lambda s: type(s).__name__)
def test_json_round_trip_gives_equal_settings(settings):
    back = from_dict(type(settings), _json(settings))
    assert back == settings
    assert isinstance(back, type(settings))


def test_nested_settings_and_tuples_are_rebuilt():
    back = from_dict(IngestSettings, _json(IngestSettings(modalities=("US",))))
    assert back.modalities == ("US",) and isinstance(back.modalities, tuple)
    assert type(back.cone).__name__ == "ConeSettings"
    c = from_dict(ClassifierSettings, {"crop": {"size": 96}, "mean": [0.5, 0.5, 0.5]})
    assert c.crop == CropSettings(size=96) and c.mean == (0.5, 0.5, 0.5)


def test_missing_fields_keep_their_defaults():
    assert from_dict(ScreeningSettings, {"exam_aggregate": "median"}) == ScreeningSettings(exam_aggregate="median")


def test_old_field_names_still_read():
    """classifier.json / detector records written before the rename to ``batch`` and ``lr``."""
    old_clf = {**_json(classifier_preset("cpu")), "batch_size": 16}
    del old_clf["batch"]
    assert from_dict(ClassifierSettings, old_clf) == classifier_preset("cpu")
    old_det = {**_json(detector_preset("cpu")), "lr0": 0.002}
    del old_det["lr"]
    assert from_dict(DetectorSettings, old_det).lr == 0.002
    # both present: the new name wins
    assert from_dict(ClassifierSettings, {"batch_size": 3, "batch": 5}).batch == 5


def test_unknown_field_is_a_clear_error():
    with pytest.raises(EchoAVCError, match=r"bundle.json: unknown ScreeningSettings field\(s\) frobnicate"):
        from_dict(ScreeningSettings, {"frobnicate": 1}, "bundle.json")
    with pytest.raises(EchoAVCError, match="expected a JSON object"):
        from_dict(ScreeningSettings, [1, 2])


@pytest.mark.parametrize("cls, field, bad, needle", [
    (ScreeningSettings, "exam_aggregate", "average", "exam_aggregate must be one of mean, median, max"),
    (ScreeningSettings, "exam_threshold_rule", "fixed", "exam_threshold_rule must be one of"),
    (ScreeningSettings, "min_recall", 1.5, "min_recall must be between 0 and 1"),
    (ClassifierSettings, "pooling", "mean", "pooling must be one of none, max, avg"),
    (ClassifierSettings, "calibration", "platt", "calibration must be one of"),
    (ClassifierSettings, "cross_validate", "sometimes", "cross_validate must be one of"),
    (DetectorSettings, "conf", 1.5, "conf must be between 0 and 1"),
    (DatasetSettings, "space", "pixels", "space must be one of original, standard"),
    (SynthSettings, "prevalence", -0.1, "prevalence must be between 0 and 1"),
])
def test_allowed_values_are_checked_on_construction(cls, field, bad, needle):
    with pytest.raises(EchoAVCError, match=needle):
        cls(**{field: bad})
    with pytest.raises(EchoAVCError, match=needle):  # and on replace / from JSON alike
        from_dict(cls, {field: bad})


def test_decide_conf_below_valve_conf_is_refused():
    with pytest.raises(EchoAVCError, match="decide_conf .* must be at least valve_conf"):
        replace(ScreeningSettings(), valve_conf=0.5, decide_conf=0.2)


def _defaults(*path) -> dict:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return {p.name: p for p in cmd.params}


def test_cli_defaults_are_the_settings_defaults():
    ing, syn, scr = IngestSettings(), SynthSettings(), ScreeningSettings()
    p = _defaults("ingest")
    assert (p["size"].default, p["every_nth"].default, p["qc"].default, p["write_dicom"].default) == \
        (ing.size, ing.every_nth, ing.qc, ing.write_dicom)
    assert tuple(p["modality"].default) == ing.modalities
    p = _defaults("synth")
    assert (p["prevalence"].default, p["frames_per_exam"].default, p["exams_per_patient"].default,
            p["workers"].default) == (syn.prevalence, syn.frames_per_exam, syn.exams_per_patient, syn.workers)
    p = _defaults("train")
    assert (p["exam_rule"].default, p["min_recall"].default, p["aggregate"].default) == \
        (scr.exam_threshold_rule, scr.min_recall, scr.exam_aggregate)
    ds = DatasetSettings()
    p = _defaults("dataset", "build")
    assert (p["space"].default, p["ids"].default, p["unknown_view"].default) == (ds.space, ds.ids, ds.unknown_view)
    p = _defaults("dataset", "materialise")
    assert (p["crop_size"].default, p["margin"].default, p["jitter"].default) == (224, 0.1, 0.0) == \
        (CropSettings().size, CropSettings().margin, CropSettings().jitter)


def test_classifier_batch_option_keeps_its_old_spelling():
    opts = _defaults("classifier", "train")["batch"].opts
    assert opts == ["--batch", "--batch-size"]


def test_bad_choice_is_refused_by_the_cli(tmp_path):
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "b"),
                                 "--aggregate", "average"])
    assert r.exit_code == 2 and "average" in r.output and "Traceback" not in r.output


def test_classifier_tables_take_seed_and_threads_from_the_settings():
    s = ClassifierSettings()
    for table in ("table2", "table3", "table4"):
        p = _defaults("experiments", table)
        assert (p["seed"].default, p["threads"].default) == (s.seed, s.threads)
