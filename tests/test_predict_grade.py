"""The severity grade in ``echoavc predict``'s outputs; a bundle without a grade head screens exactly as before
(issue 17)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np

from echoavc.bundle import load_bundle
from echoavc.classifier.grade import NOT_TRAINED, pool_frames
from echoavc.predict import EXAM_COLUMNS, FRAME_COLUMNS, predict


def _header(path):
    with open(path) as f:
        return next(csv.reader(f))


def _without_grade(bundle, out):
    """The bundle as a training without grades makes it: no grade files, bundle.json saying so."""
    shutil.copytree(bundle, out)
    meta = json.loads((out / "bundle.json").read_text())
    for rel in [r for r in meta["files"] if r.startswith("classifier/grade.")]:
        (out / rel).unlink()
        del meta["files"][rel]
    (out / "grade.json").write_text(json.dumps({"trained": False, "note": NOT_TRAINED}))
    meta["files"]["grade.json"] = hashlib.sha256((out / "grade.json").read_bytes()).hexdigest()
    (out / "bundle.json").write_text(json.dumps(meta, indent=1))
    return out


def test_exam_grade_in_every_output_and_none_without_a_head(screening_bundle, tmp_path):
    files = screening_bundle.test_sources[:4]
    kw = dict(settings=screening_bundle.settings, progress=False, overlays="none")
    graded = predict(files, screening_bundle.bundle, tmp_path / "graded", **kw)
    plain = predict(files, _without_grade(screening_bundle.bundle, tmp_path / "plain_bundle"), tmp_path / "plain", **kw)
    k = len(json.loads((screening_bundle.bundle / "grade.json").read_text())["classes"])
    probs = [f"grade_p{i}" for i in range(k)]
    # without a head: the columns, decisions and probabilities of today
    assert _header(tmp_path / "plain" / "exams.csv") == EXAM_COLUMNS
    assert _header(tmp_path / "plain" / "frames.csv") == FRAME_COLUMNS
    assert all("grade" not in e for e in plain.exams) and all("grade_probabilities" not in f for f in plain.frames)
    assert "Grade 0-3" not in (tmp_path / "plain" / "report.html").read_text()
    doc = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert doc["model"]["grade"] == NOT_TRAINED
    # with it: the same binary results, plus the grade
    assert _header(tmp_path / "graded" / "exams.csv") == EXAM_COLUMNS + ["grade", *probs, "grade_frames"]
    assert _header(tmp_path / "graded" / "frames.csv") == FRAME_COLUMNS + probs
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("grade")} for r in rows]  # noqa: E731
    assert strip(graded.exams) == plain.exams and strip(graded.frames) == plain.frames
    decided_exams = [e for e in graded.exams if e["probability"] is not None]
    assert decided_exams
    pooling = load_bundle(screening_bundle.bundle).grade_pooling
    assert pooling["kind"] == "geometric" and pooling["sharpness"] != 1.0
    for e in decided_exams:
        assert len(e["grade_probabilities"]) == k and abs(sum(e["grade_probabilities"]) - 1) < 1e-5
        # the exam pools its decided frames' grade probabilities by the head's rule (fitted on validation exams)
        frame_probs = [f["grade_probabilities"] for f in graded.frames
                       if f["exam_id"] == e["exam_id"] and f["status"] == "decided"]
        assert np.allclose(e["grade_probabilities"], pool_frames(frame_probs, pooling), atol=1e-5)
        assert e["grade"] == int(np.searchsorted(np.cumsum(e["grade_probabilities"]), 0.5 - 1e-12))
        # the grade rests on the frames the decision rests on: the exam's decided frames
        decided = {(f["source"], f["frame_index"]) for f in graded.frames
                   if f["exam_id"] == e["exam_id"] and f["status"] == "decided"}
        assert e["grade_frames"] == e["n_decided"] == len(decided)
        assert {(r["source"], r["frame_index"]) for r in e["grade_rests_on"]} == decided
    html = (tmp_path / "graded" / "report.html").read_text()
    assert "Grade 0-3" in html and "P per grade" in html
    with open(tmp_path / "graded" / "exams.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["probability"])
    assert row["grade"] != "" and int(row["grade_frames"]) >= 1
