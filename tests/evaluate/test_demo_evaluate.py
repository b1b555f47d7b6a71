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
