"""dataset build: the join is right, and every kind of problem is one clear line."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from echoavc.cli import app
from echoavc.dataset.table import DatasetTable, build_dataset


def test_join_reproduces_boxes_labels_views_and_roles(ingest, built):
    table, folder = built
    f = table.frame.set_index("key")
    assert len(f) == len(ingest.views)
    for k, view in ingest.views.items():
        assert f.loc[k, "view"] == view
        assert f.loc[k, "role"] == ("valve" if view == "psax_av" else "background")
    for k, b in ingest.boxes_std.items():
        assert np.allclose(f.loc[k, ["x1", "y1", "x2", "y2"]].to_numpy(float), b, atol=1e-6)
    for sid, (cal, grade) in ingest.exam_labels.items():
        rows = f[f["study_id"] == sid]
        assert (rows["calcified"] == cal).all() and (rows["grade"] == grade).all()
        assert (rows["patient_id"] == ingest.patient_of_exam[sid]).all()
    # saved and loaded back identically, with a fingerprint
    loaded = DatasetTable.load(folder)
    assert loaded.fingerprint == table.fingerprint == loaded.meta["fingerprint"]
    pd.testing.assert_frame_equal(loaded.frame.reset_index(drop=True), table.frame.reset_index(drop=True),
                                  check_dtype=False)
    assert loaded.image_file(loaded.frame["image_path"][0]).is_file()


def test_views_are_inferred_without_a_views_file(ingest, tmp_path):
    t = build_dataset(ingest.manifest, ingest.write_maxqda(tmp_path / "b.csv"), "maxqda")
    f = t.frame.set_index("key")
    assert set(f.loc[list(ingest.boxes_std), "view"]) == {"psax_av"}
    assert set(f.loc[list(ingest.boxes_std), "view_source"]) == {"inferred"}
    bg = [k for k, v in ingest.views.items() if v != "psax_av"]
    assert set(f.loc[bg, "role"]) == {"unlabelled"}  # unknown view: not used as background by default
    from echoavc.settings import DatasetSettings
    t2 = build_dataset(ingest.manifest, tmp_path / "b.csv", "maxqda",
                       settings=DatasetSettings(unknown_view="background"))
    assert set(t2.frame.set_index("key").loc[bg, "role"]) == {"background"}


def _problem_build(ingest, tmp_path, edit_boxes=None, edit_labels=None, edit_views=None, edit_manifest=None):
    root = tmp_path / "ing"
    shutil.copytree(ingest.root, root)
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    if edit_manifest:
        m = edit_manifest(m)
    m.to_csv(root / "manifest.csv", index=False)
    b = pd.read_csv(ingest.write_maxqda(tmp_path / "b.csv"))
    if edit_boxes:
        b = edit_boxes(b)
    b.to_csv(tmp_path / "b.csv", index=False)
    lab = pd.DataFrame(ingest.labels)
    if edit_labels:
        lab = edit_labels(lab)
    lab.to_csv(tmp_path / "l.csv", index=False)
    v = pd.read_csv(ingest.write_views(tmp_path / "v.csv"), dtype=str)
    if edit_views:
        v = edit_views(v)
    v.to_csv(tmp_path / "v.csv", index=False)
    return build_dataset(root / "manifest.csv", tmp_path / "b.csv", "maxqda", tmp_path / "l.csv", ingest.key,
                         tmp_path / "v.csv", out=tmp_path / "table")


def _only(table, level, needle):
    hits = [p for p in table.problems if needle in p.message]
    assert len(hits) == 1, [p.line() for p in table.problems]
    assert hits[0].level == level
    assert not (table.out_written if hasattr(table, "out_written") else False)
    return hits[0]


def test_missing_image(ingest, tmp_path):
    k = next(iter(ingest.boxes_std))
    path = ingest.df().set_index(ingest.df()["source_sha256"] + ":" + ingest.df()["frame_index"]).loc[k, "image_path"]

    def drop(m):
        (tmp_path / "ing" / path).unlink()
        return m
    t = _problem_build(ingest, tmp_path, edit_manifest=drop)
    p = _only(t, "error", "missing image")
    assert p.where == k
    assert (tmp_path / "table" / "problems.csv").is_file() and not (tmp_path / "table" / "table.csv").exists()


def test_box_outside_the_image(ingest, tmp_path):
    def push(b):
        b.loc[0, "x"] = b.loc[0, "x"] + 5000
        return b
    t = _problem_build(ingest, tmp_path, edit_boxes=push)
    _only(t, "error", "outside the image")


def test_two_boxes_on_one_frame(ingest, tmp_path):
    t = _problem_build(ingest, tmp_path, edit_boxes=lambda b: pd.concat([b, b.iloc[[2]]], ignore_index=True))
    p = _only(t, "error", "2 valve boxes on one frame")
    assert p.where == b_key(ingest, 2)


def b_key(ingest, i):
    return list(ingest.boxes_std)[i]


def test_psax_av_frame_without_a_box(ingest, tmp_path):
    t = _problem_build(ingest, tmp_path, edit_boxes=lambda b: b.drop(index=1))
    p = _only(t, "error", "without a valve box")
    assert p.where == b_key(ingest, 1)


def test_box_on_another_view(ingest, tmp_path):
    def relabel(v):
        sha, idx = b_key(ingest, 0).split(":")
        v.loc[(v["source_sha256"] == sha) & (v["frame_index"] == idx), "view"] = "a4c"
        return v
    t = _problem_build(ingest, tmp_path, edit_views=relabel)
    _only(t, "error", "a valve box on a a4c frame")


def test_contradicting_labels_within_an_exam(ingest, tmp_path):
    def twice(lab):
        row = lab.iloc[[0]].copy()
        row["grade"] = 3 if int(row["grade"].iloc[0]) != 3 else 1
        row["calcified"] = 1
        return pd.concat([lab, row], ignore_index=True)
    t = _problem_build(ingest, tmp_path, edit_labels=twice)
    _only(t, "error", "labels contradict each other")


def test_patient_without_group_id(ingest, tmp_path):
    def blank(m):
        m.loc[m.index[-1], "patient_id"] = ""
        return m
    t = _problem_build(ingest, tmp_path, edit_manifest=blank)
    _only(t, "error", "no patient id")


def test_wrong_key_labels_join_nothing(ingest, tmp_path):
    other = tmp_path / "other.key"
    other.write_text((b"\x01" * 32).hex())
    t = build_dataset(ingest.manifest, ingest.write_maxqda(tmp_path / "b.csv"), "maxqda",
                      ingest.write_labels(tmp_path / "l.csv"), other)
    _only(t, "error", "no exam in the labels file matches")


def test_warnings_do_not_stop_the_build(ingest, tmp_path):
    """An exam without a label is a warning: the table is written."""
    t = _problem_build(ingest, tmp_path, edit_labels=lambda lab: lab.iloc[1:])
    assert not t.errors and t.warnings
    assert (tmp_path / "table" / "table.csv").is_file()


def test_cli_build_one_line_per_problem_and_exit_codes(ingest, tmp_path):
    b = pd.read_csv(ingest.write_maxqda(tmp_path / "b.csv"))
    b.loc[0, "x"] += 5000
    pd.concat([b, b.iloc[[3]]]).to_csv(tmp_path / "bad.csv", index=False)
    runner = CliRunner()
    args = ["dataset", "build", "--manifest", str(ingest.manifest), "--labels",
            str(ingest.write_labels(tmp_path / "l.csv")), "--key", str(ingest.key),
            "--views", str(ingest.write_views(tmp_path / "v.csv")), "--out", str(tmp_path / "t")]
    r = runner.invoke(app, args + ["--boxes", str(tmp_path / "bad.csv")])
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    # box 0 outside the image, box 3 twice: two problems, two lines
    assert len(errors) == 2, r.output
    assert any("outside the image" in e for e in errors) and any("2 valve boxes" in e for e in errors)
    r = runner.invoke(app, args + ["--boxes", str(tmp_path / "b.csv")])
    assert r.exit_code == 0, r.output
    assert "valve" in r.output and (tmp_path / "t" / "table.csv").is_file()
    r = runner.invoke(app, ["dataset", "build", "--manifest", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no such manifest" in r.output
