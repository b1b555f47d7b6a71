"""The loop the review closes: answers recorded on a real ``predict --review-frames`` run -> ``echoavc review
export`` -> ``echoavc dataset build`` (with the ingest manifest of the same files) -> labels equal to the
reviewer's, boxes where the reviewer drew them, wrong views as background -> a smoke ``train`` of the classifier."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from echoavc.cone.transform import StandardTransform
from echoavc.review.export import export_review
from echoavc.review.frames import load_clips
from echoavc.review.results import load_results
from echoavc.review.store import ReviewStore

pytestmark = pytest.mark.slow


def _truth(study):
    frames = pd.read_csv(study.cohort.frames, dtype={"source_sha256": str})
    labels = pd.read_csv(study.cohort.labels, dtype=str)
    by_uid = {r.study_instance_uid: (int(r.calcified), int(r.grade)) for r in labels.itertuples()}
    return frames, by_uid


def _review_like_a_cardiologist(results, study):
    """Record answers as a reviewer who knows the truth would: the generator's label per exam (the first exam's
    model decision confirmed as it is), every non-valve-view frame marked, and one valve box redrawn on the
    generator's box. Returns what was recorded."""
    frames, by_uid = _truth(study)
    res = load_results(results)
    clips = load_clips(results)
    uid_of_sha = dict(zip(frames["source_sha256"], frames["study_instance_uid"]))
    store = ReviewStore(results)
    answers, wrong, drawn = {}, set(), None
    for n, e in enumerate(res.exams):
        sha = next(s for s, c in clips.items() if c["exam_id"] == e["exam_id"])
        cal, grade = by_uid[uid_of_sha[sha]]
        if n == 0 and e["decision"] in ("calcified", "not calcified"):
            decision, grade = e["decision"], None  # confirmed as the model called it
        else:
            decision = "calcified" if cal else "not calcified"
        answers[e["exam_id"]] = store.record_exam(e["exam_id"], decision, grade, e["decision"], "dr-a")
        answers[e["exam_id"]]["grade"] = grade
    for r in frames.itertuples():
        if r.source_sha256 not in clips:
            continue
        t = StandardTransform(**clips[r.source_sha256]["transform"])
        if r.view != "psax_av":
            store.record_view(r.source_sha256, int(r.frame_index), r.view, "dr-a")
            wrong.add((r.source_sha256, int(r.frame_index)))
        elif drawn is None:
            box = t.box_to_standard([r.valve_x1, r.valve_y1, r.valve_x2, r.valve_y2])
            drawn = (r.source_sha256, int(r.frame_index), store.record_box(r.source_sha256, int(r.frame_index),
                                                                           list(box), "dr-a", 640))
    store.close()
    return answers, wrong, drawn


def test_export_builds_a_dataset_with_the_reviewers_labels_and_boxes_and_trains(results, reviewed_cohort, tmp_path):
    from echoavc.dataset import make_split
    from echoavc.dataset.table import build_dataset
    from echoavc.settings import DatasetSettings, SplitSettings

    study, space = reviewed_cohort.study, "original"
    answers, wrong, (sha, index, box) = _review_like_a_cardiologist(results, study)
    counts = export_review(results, tmp_path / "export", space)
    assert counts["exams"] == len(answers) == 10
    assert counts["confirmed"] == sum(a["status"] == "confirmed" for a in answers.values()) >= 1
    assert counts["boxes_by_reviewer"] == 1 and counts["wrong_view_frames"] == len(wrong) > 0

    table = build_dataset(study.ingested / "manifest.csv", tmp_path / "export" / "boxes.json", "coco",
                          tmp_path / "export" / "labels.csv", study.key, tmp_path / "export" / "views.csv",
                          DatasetSettings(space=space), out=tmp_path / "table")
    assert not table.errors, [p.line() for p in table.errors]
    t = table.frame
    # every reviewed exam's label is the reviewer's, confirmed ones included
    for exam_id, a in answers.items():
        rows = t[t["study_id"] == exam_id]
        assert len(rows) > 0, exam_id  # the keyed exam id joins the manifest
        assert set(rows["calcified"]) == {int(a["decision"] == "calcified")}, exam_id
        if a["grade"] is not None:
            assert set(rows["grade"]) == {a["grade"]}, exam_id
    # the box drawn on the standard frame comes back on that frame (through the original space) to 0.01 px
    row = t[(t["source_sha256"] == sha) & (t["frame_index"] == index)].iloc[0]
    assert row["role"] == "valve"
    np.testing.assert_allclose([row["x1"], row["y1"], row["x2"], row["y2"]], box, atol=0.01)
    # frames marked as another view are detector background, never valve frames
    marked = t[[(s, int(i)) in wrong for s, i in zip(t["source_sha256"], t["frame_index"])]]
    assert len(marked) == len(wrong) and set(marked["role"]) == {"background"}
    assert (t["role"] == "valve").sum() == counts["boxes"]

    # ... and the dataset trains (the smoke classifier preset: plumbing, not accuracy)
    from echoavc.classifier.train import train_classifier
    from echoavc.settings import classifier_preset

    split = make_split(t, SplitSettings(k=0, train=0.6, val=0.2, test=0.2), table.fingerprint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_classifier(table, split, tmp_path / "model", classifier_preset("smoke", threads=1))
    assert (tmp_path / "model" / "model.safetensors").is_file()
    meta = json.loads((tmp_path / "model" / "classifier.json").read_text())
    assert meta  # written last: training finished


def test_export_refuses_results_nobody_reviewed(results, tmp_path):
    from echoavc.errors import EchoAVCError

    with pytest.raises(EchoAVCError, match="no review recorded"):
        export_review(results, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_export_in_the_standard_space_gives_the_same_table_boxes(results, reviewed_cohort, tmp_path):
    from echoavc.dataset.table import build_dataset
    from echoavc.settings import DatasetSettings

    study = reviewed_cohort.study
    _, _, (sha, index, box) = _review_like_a_cardiologist(results, study)
    export_review(results, tmp_path / "export", "standard")
    coco = json.loads((tmp_path / "export" / "boxes.json").read_text())
    assert {im["width"] for im in coco["images"]} == {640}
    table = build_dataset(study.ingested / "manifest.csv", tmp_path / "export" / "boxes.json", "coco",
                          tmp_path / "export" / "labels.csv", study.key, tmp_path / "export" / "views.csv",
                          DatasetSettings(space="standard"), out=tmp_path / "table")
    assert not table.errors, [p.line() for p in table.errors]
    t = table.frame
    row = t[(t["source_sha256"] == sha) & (t["frame_index"] == index)].iloc[0]
    np.testing.assert_allclose([row["x1"], row["y1"], row["x2"], row["y2"]], box, atol=0.01)
