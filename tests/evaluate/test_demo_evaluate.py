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


def test_a_grown_study_adds_the_classifiers_patients_without_moving_the_detectors(tmp_path):
    """The demo makes the detector's patients first and adds the classifier's while the detector trains: the
    grown table holds both, each of the first patients keeps its part, and the added ones are valve clips only."""
    from echoavc.dataset.split import Split
    from echoavc.demo import write_demo_key
    from echoavc.synth.study import grow_study, make_study

    write_demo_key(tmp_path / "keys" / "echoavc.key", 3)
    first, first_split, _ = make_study(tmp_path, 4, 4100, frames_per_exam=3, train=0.75, val=0.25, test=0.0,
                                       prevalence=0.5, table_name="table-detector")
    table, split, info = grow_study(tmp_path, 4, 4101, frames_per_exam=2, prevalence=0.5,
                                    from_table="table-detector", table_name="table", distractor_fraction=0.0)
    assert info["patients_added"] == 4 and info["dropped_files"] == 0
    old = set(first.frame["patient_id"])
    assert old < set(table.frame["patient_id"]) and table.frame["patient_id"].nunique() == 8
    assert all(split.patients[p]["part"] == r["part"] for p, r in first_split.patients.items())
    added = table.frame[~table.frame["patient_id"].isin(old)]
    assert len(added) == 8 and set(added["role"]) == {"valve"}
    assert Split.load(tmp_path / "table" / "split.json").table_fingerprint == table.fingerprint
    with pytest.raises(ValueError, match="patient ids"):  # seed 5100 gives the ids of seed 4100 again
        grow_study(tmp_path, 2, 5100, frames_per_exam=1, from_table="table-detector", table_name="table-x")
    assert not (tmp_path / "cohort-5100").exists()  # refused before anything is made
