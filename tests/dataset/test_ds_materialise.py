"""materialise: YOLO folders and crops per fold and augmentation; leakage checked on the files written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from echoavc.cli import app
from echoavc.dataset.folders import materialise, valve_crop
from echoavc.dataset.split import make_split
from echoavc.errors import EchoAVCError
from echoavc.settings import CropSettings, SplitSettings


@pytest.fixture(scope="module")
def split(built, tmp_path_factory):
    table, _ = built
    s = make_split(table.frame, SplitSettings(seed=1, k=3, train=0.6, val=0.2, test=0.2), table.fingerprint)
    s.save(tmp_path_factory.mktemp("split") / "split.json")
    return s


def _stem_to_row(table):
    return {Path(p).stem: r for p, r in zip(table.frame["image_path"], table.frame.to_dict("records"))}


def _files(out: Path):
    """part -> list of (base stem, variant) from the files on disk."""
    res = {}
    for img in sorted((out / "images").glob("*/*.png")):
        base, _, variant = img.stem.partition("__")
        res.setdefault(img.parent.name, []).append((base, variant or "original"))
    return res


def test_patient_protocol_keeps_augmentation_and_balancing_in_train(built, split, tmp_path):
    table, _ = built
    rows = _stem_to_row(table)
    rep = materialise(table, split, tmp_path / "m", fold=1, augmentation="translation+rotation",
                      balance="duplicate", crop_settings=CropSettings(size=64, jitter=0.1), seed=3)
    out = rep.out
    files = _files(out)
    # no patient in two parts; the parts are fold 1's
    patients = {part: {rows[b]["patient_id"] for b, _ in v} for part, v in files.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"]) \
        and not (patients["val"] & patients["test"])
    assert patients["val"] == split.parts(1)["val"] & set(table.frame.loc[table.frame.role != "unlabelled", "patient_id"])
    # augmented variants in train only, and every train valve frame has them
    assert all(v == "original" for part in ("val", "test") for _, v in files[part])
    train_valve = [b for b, v in files["train"] if v == "original" and rows[b]["role"] == "valve"]
    assert len([1 for _, v in files["train"] if v != "original"]) == 4 * len(train_valve) - len(rep.rejected)
    # labels: one per image; background frames empty; valve boxes = table boxes (normalised)
    for part, items in files.items():
        for b, v in items:
            stem = b if v == "original" else f"{b}__{v}"
            text = (out / "labels" / part / f"{stem}.txt").read_text()
            r = rows[b]
            if r["role"] == "background":
                assert text == ""
            elif v == "original":
                cls, cx, cy, w, h = (float(x) for x in text.split())
                s = r["std_size"]
                assert cls == 0 and np.allclose([(cx - w / 2) * s, (cy - h / 2) * s, (cx + w / 2) * s, (cy + h / 2) * s],
                                                [r["x1"], r["y1"], r["x2"], r["y2"]], atol=1e-4)
    # crops: balanced in train by duplicates, never elsewhere
    crops = pd.read_csv(out / "crops.csv")
    tr = crops[crops.part == "train"]
    assert (tr.calcified == 1).sum() == (tr.calcified == 0).sum()
    assert crops[crops.part != "train"].duplicate.sum() == 0
    assert all((out / f).is_file() for f in crops.file)
    assert cv2.imread(str(out / crops.file[0]), cv2.IMREAD_UNCHANGED).shape[:2] == (64, 64)
    meta = json.loads((out / "materialised.json").read_text())
    assert meta["leaky"] is False and meta["split_fingerprint"] == split.fingerprint and meta["fold"] == 1
    assert meta["checks"] == {"patients_in_several_parts": 0, "augmented_outside_train": 0,
                              "duplicated_crops_outside_train": 0, "weighted_crops_outside_train": 0}
    yaml = (out / "data.yaml").read_text()
    assert "train: \"images/train\"" in yaml and "echoavc_leaky: false" in yaml and "0: aortic_valve" in yaml
    assert not (out / "LEAKY.txt").exists()


def test_weights_and_online(built, split, tmp_path):
    table, _ = built
    rep = materialise(table, split, tmp_path / "w", augmentation="online", balance="weights", seed=0)
    crops = pd.read_csv(rep.out / "crops.csv")
    assert (crops[crops.part != "train"].weight == 1.0).all()
    tr = crops[crops.part == "train"]
    assert tr.groupby("calcified").weight.sum().round(6).nunique() == 1  # both classes weigh the same
    assert all(v == "original" for vs in _files(rep.out).values() for _, v in vs)
    assert rep.meta["online"]["ultralytics_args"]["degrees"] == 10


def test_paper_protocol_is_leaky_and_says_so(built, tmp_path):
    table, _ = built
    rows = _stem_to_row(table)
    rep = materialise(table, None, tmp_path / "p", protocol="paper", augmentation="rotation", balance="duplicate",
                      crops=True, seed=0)
    out = rep.out
    assert (out / "LEAKY.txt").read_text().startswith("LEAKY")
    assert "echoavc_leaky: true" in (out / "data.yaml").read_text()
    leak = json.loads((out / "materialised.json").read_text())["leakage"]
    files = _files(out)
    parts_of_patient, parts_of_frame = {}, {}
    for part, items in files.items():
        for b, v in items:
            parts_of_patient.setdefault(rows[b]["patient_id"], set()).add(part)
            parts_of_frame.setdefault(b, set()).add(part)
    shared = sum(len(s) > 1 for s in parts_of_patient.values())
    assert shared > 0 and leak["patients_in_several_parts"] == shared
    assert sum(len(s) > 1 for s in parts_of_frame.values()) > 0  # copies of one image on both sides
    assert any(v != "original" for part in ("val", "test") for _, v in files.get(part, []))
    assert rep.meta["checks"]["augmented_outside_train"] > 0


def test_rejected_variants_are_reported_not_kept(built, split, tmp_path):
    table, _ = built
    t2 = type(table)(table.frame.copy(), [], table.ingest_dir, table.meta)
    train_patients = split.parts(None)["train"]
    v = t2.frame.index[(t2.frame.role == "valve") & t2.frame.patient_id.isin(train_patients)][0]
    w = t2.frame.index[(t2.frame.role == "valve") & ~t2.frame.patient_id.isin(train_patients)][0]
    t2.frame.loc[w, ["x1", "x2"]] = [t2.frame.loc[w, "std_size"] - 12.0, t2.frame.loc[w, "std_size"] - 1.0]
    s = t2.frame.loc[v, "std_size"]
    t2.frame.loc[v, ["x1", "x2"]] = [s - 12.0, s - 1.0]  # a valve at the right edge: zoom x2 pushes it out
    rep = materialise(t2, split, tmp_path / "r", augmentation="zoom", crops=False)
    rej = pd.read_csv(rep.out / "rejected.csv")
    assert set(rej.key) == {t2.frame.loc[v, "key"]} and list(rej.variant) == ["zoom2"]
    assert "leaves the image" in rej.reason[0]
    stem = Path(t2.frame.loc[v, "image_path"]).stem
    assert not (rep.out / "images" / "train" / f"{stem}__zoom2.png").exists()
    assert (rep.out / "images" / "train" / f"{stem}__zoom0.5.png").exists()
    # the edge valve outside train (w) is never augmented, so never rejected


def test_existing_output_and_bad_fold(built, split, tmp_path):
    table, _ = built
    (tmp_path / "x").mkdir()
    with pytest.raises(EchoAVCError, match="exists"):
        materialise(table, split, tmp_path / "x")
    with pytest.raises(EchoAVCError, match="fold 7"):
        materialise(table, split, tmp_path / "y", fold=7)
    assert not (tmp_path / "y").exists()


def test_valve_crop_letterboxes_and_jitters_reproducibly():
    img = np.zeros((100, 100), np.uint8)
    img[40:50, 20:60] = 255  # a wide valve
    c = valve_crop(img, (20, 40, 60, 50), size=224, margin=0.0)
    assert c.shape == (224, 224)
    rows = np.nonzero(c.max(axis=1) > 127)[0]
    assert c[:, 112].max() == 255 and 50 < len(rows) < 60 and c[0].max() == 0  # padded above and below
    a = valve_crop(img, (20, 40, 60, 50), jitter=0.2, rng=np.random.default_rng(1))
    b = valve_crop(img, (20, 40, 60, 50), jitter=0.2, rng=np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, valve_crop(img, (20, 40, 60, 50)))


def test_cli_split_materialise_export_and_preview(built, tmp_path):
    _, folder = built
    r = CliRunner().invoke(app, ["dataset", "split", "--data", str(folder), "--out", str(tmp_path / "s.json"),
                                 "--k", "3"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["dataset", "materialise", "--data", str(folder), "--split", str(tmp_path / "s.json"),
                                 "--out", str(tmp_path / "m"), "--augmentation", "4", "--fold", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m" / "data.yaml").is_file()
    r = CliRunner().invoke(app, ["dataset", "materialise", "--data", str(folder), "--out", str(tmp_path / "p"),
                                 "--protocol", "paper", "--no-progress"])
    assert r.exit_code == 0 and "LEAKY" in r.output
    for fmt in ("yolo", "coco"):
        r = CliRunner().invoke(app, ["dataset", "export", "--data", str(folder), "--format", fmt, "--space",
                                     "original", "--out", str(tmp_path / f"e.{fmt}")])
        assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["augment", "--data", str(folder), "--preview", str(tmp_path / "grid.png"), "--n", "2"])
    assert r.exit_code == 0, r.output
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid.shape == (2 * 192, 9 * 192, 3)
    r = CliRunner().invoke(app, ["augment", "--data", str(folder), "--augmentation", "zoom"])
    assert r.exit_code == 0 and "valve frames ->" in r.output


def test_augmentation_check_and_preview_from_the_library(built):
    """What ``echoavc augment`` prints and draws comes from dataset.augment, not from the command."""
    from echoavc.dataset.augment import check_augmentation, fixed_techniques, table_preview, variants

    table, folder = built
    n_valve = int((table.frame["role"] == "valve").sum())
    techniques = fixed_techniques("translation+rotation")
    check = check_augmentation(table, techniques)
    assert check.frames == n_valve > 0
    assert check.kept + len(check.rejected) == n_valve * len(variants(techniques))
    grid, shown = table_preview(table, techniques, n=2, seed=0)
    assert shown == 2 and grid.shape == (2 * 192, (1 + len(variants(techniques))) * 192, 3)
    with pytest.raises(EchoAVCError, match="fixed variants"):
        fixed_techniques("online")
    empty = type(table)(table.frame[table.frame["role"] != "valve"], ingest_dir=table.ingest_dir)
    with pytest.raises(EchoAVCError, match=f"{folder}: the table has no valve frames"):
        check_augmentation(empty, techniques, where=folder)
