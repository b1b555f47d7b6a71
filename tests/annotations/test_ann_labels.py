from __future__ import annotations

import pandas as pd
import pytest

from echoavc.annotations.labels import read_labels
from echoavc.dicom.deid import pseudonym
from echoavc.errors import EchoAVCError


def test_original_ids_are_pseudonymised_with_the_key(ingest, tmp_path):
    p = ingest.write_labels(tmp_path / "labels.csv")
    lab = read_labels(p, ingest.secret)
    assert not lab.problems
    assert {e: (r["calcified"], r["grade"]) for e, r in lab.exams.items()} == ingest.exam_labels
    assert {e: r["patient_id"] for e, r in lab.exams.items()} == ingest.patient_of_exam


def test_original_ids_without_a_key_are_an_error(ingest, tmp_path):
    with pytest.raises(EchoAVCError, match="key"):
        read_labels(ingest.write_labels(tmp_path / "labels.csv"), None)


def test_pseudonymous_ids_are_used_as_they_are(ingest, tmp_path):
    rows = [{"exam": e, "patient": ingest.patient_of_exam[e], "calcified": c, "grade": g}
            for e, (c, g) in ingest.exam_labels.items()]
    p = tmp_path / "l.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    lab = read_labels(p, None, known_exams=set(ingest.exam_labels))
    assert set(lab.exams) == set(ingest.exam_labels)


def test_contradictions_are_one_error_each(tmp_path):
    secret = b"k" * 32
    p = tmp_path / "l.csv"
    pd.DataFrame([
        {"study_instance_uid": "1.1", "patient_id": "A", "calcified": 1, "grade": 2},
        {"study_instance_uid": "1.1", "patient_id": "A", "calcified": 1, "grade": 3},  # grade differs
        {"study_instance_uid": "1.2", "patient_id": "A", "calcified": 0, "grade": 2},  # calcified vs grade
        {"study_instance_uid": "1.3", "patient_id": "B", "calcified": "yes", "grade": ""},
        {"study_instance_uid": "1.4", "patient_id": "B", "calcified": "maybe", "grade": ""},
    ]).to_csv(p, index=False)
    lab = read_labels(p, secret)
    msgs = [q.line() for q in lab.problems]
    assert len(msgs) == 3, msgs
    assert any("1.1" in m and "contradict" in m for m in msgs)
    assert any("1.2" in m and "contradicts grade" in m for m in msgs)
    assert any("maybe" in m for m in msgs)
    e11 = lab.exams[pseudonym(secret, "study", "1.1")]
    assert e11["calcified"] is None and e11["grade"] is None  # a contradicted exam has no label
    assert lab.exams[pseudonym(secret, "study", "1.3")]["calcified"] == 1
