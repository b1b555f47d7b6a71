"""``echoavc train`` keeps finished stages in its work folder: a re-run must find them done."""

from dataclasses import asdict

from echoavc.settings import ClassifierSettings, classifier_preset
from echoavc.train import mark_stage_done, stage_done


def test_a_finished_stage_with_tuple_settings_is_found_done(tmp_path):
    # the classifier's settings hold tuples (normalisation mean/std), which JSON reads back as lists
    settings = classifier_preset("cpu")
    assert any(isinstance(v, tuple) for v in asdict(settings).values())
    fp = {"table": "t1", "split": "s1", "settings": asdict(settings)}
    mark_stage_done(tmp_path, fp, {"seconds": 1.0})
    assert stage_done(tmp_path, fp) == {"fingerprint": stage_done(tmp_path, fp)["fingerprint"], "seconds": 1.0}


def test_other_settings_are_not_found_done(tmp_path):
    fp = {"table": "t1", "split": "s1", "settings": asdict(ClassifierSettings())}
    mark_stage_done(tmp_path, fp, {"seconds": 1.0})
    other = {**fp, "settings": asdict(ClassifierSettings(epochs=ClassifierSettings().epochs + 1))}
    assert stage_done(tmp_path, other) is None
    assert stage_done(tmp_path, {**fp, "split": "s2"}) is None
