"""``echoavc demo`` ends with held-out test figures from ``echoavc evaluate`` on an evaluation seed."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow  # trains the smoke presets on a 10-patient study: about 2.5 min on 2 shared cores
def test_the_demo_reports_held_out_figures_from_evaluate_on_an_evaluation_seed(tmp_path):
    from echoavc.demo import CORRUPT_NAME, describe, run_demo

    res = run_demo(tmp_path / "demo", patients=10, heldout=4, train_seed=7, preset="smoke", progress=False,
                   log=lambda m: None, seed=900_777)
    ev = res.evaluation
    assert ev["heldout_seed"] == 900_777 and ev["data"]["source"] == "exams"
    assert ev["counts"]["exams"] == 4  # one exam per held-out patient, none dropped
    # the deliberately truncated copy is counted against its exam, not skipped
    assert [f["source"] for f in ev["data"]["failed_files"]] == [str(res.out / "heldout-900777" / "dicom" /
                                                                     CORRUPT_NAME)]
    assert ev["counts"]["failed_files"] == 1
    assert res.report_html.is_file()
    written = json.loads((res.out / "heldout_evaluation-900777.json").read_text())
    assert written["counts"] == ev["counts"]
    text = describe(ev)
    assert text.startswith("held-out test exams (evaluation seed 900777): 4 exams")
    assert "undetermined counted as error" in text and "validation" not in text


def test_the_demo_key_follows_the_training_seed_so_its_patient_split_is_the_same_on_every_run(tmp_path):
    """The split goes through the pseudonyms: with a random key each run put other patients in each part."""
    import pandas as pd

    from echoavc.dataset import make_split
    from echoavc.demo import write_demo_key
    from echoavc.dicom.deid import PseudonymKey

    def split_of(folder, seed):
        write_demo_key(folder / "echoavc.key", seed)
        key = PseudonymKey(folder / "echoavc.key")
        frame = pd.DataFrame({"patient_id": [key.pseudonym("patient", f"P{i}") for i in range(40)],
                              "role": "valve", "calcified": [i % 2 for i in range(40)], "grade": 0.0})
        return {p: r["part"] for p, r in make_split(frame).patients.items()}, (folder / "echoavc.key").read_text()

    first, key1 = split_of(tmp_path / "a", 2026)
    again, key2 = split_of(tmp_path / "b", 2026)
    other, key3 = split_of(tmp_path / "c", 2027)
    assert key1 == key2 != key3 and len(key1.strip()) == 64
    assert first == again and set(first) != set(other)
    assert oct((tmp_path / "a" / "echoavc.key").stat().st_mode & 0o777) == "0o600"
    write_demo_key(tmp_path / "a" / "echoavc.key", 7)  # an existing key is never replaced
    assert (tmp_path / "a" / "echoavc.key").read_text() == key1


def test_the_demo_detector_trains_on_a_fixed_subset_of_the_train_and_val_patients(synthetic_study):
    from echoavc.demo import detector_subset

    table, split = synthetic_study.table, synthetic_study.split
    sub, sub_split = detector_subset(table, split, 4)
    parts = sub_split.parts()
    assert len(parts["train"]) == 3 and len(parts["val"]) == 1 and not parts["test"]
    assert parts["train"] <= split.parts()["train"] and parts["val"] <= split.parts()["val"]
    assert set(sub.frame["patient_id"]) == parts["train"] | parts["val"]
    assert sub_split.table_fingerprint == sub.fingerprint and sub_split.fingerprint == sub_split.compute_fingerprint()
    assert detector_subset(table, split, 4)[1].patients == sub_split.patients  # the same subset every time
