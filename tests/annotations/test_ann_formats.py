"""Every format round-trips, in both coordinate spaces, exact to a pixel; wrong input is reported."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from echoavc.annotations import FORMATS, ValveBox, get_format, read_boxes, write_boxes
from echoavc.errors import EchoAVCError

#: worst error after write + read in the same space: VOC is integer (classic), CVAT two decimals
TOL = {"voc": 0.5 + 1e-9, "cvat": 0.005 + 1e-9, "maxqda": 1e-4, "yolo": 1e-4, "coco": 1e-4, "labelstudio": 1e-6}


def _boxes(ingest, space):
    out = []
    for k, b in ingest.boxes_std.items():
        vb = ValveBox(k, *b, "standard")
        out.append(vb.to_space(space, ingest.transforms[k]))
    return out


def _target(tmp_path, fmt):
    return tmp_path / (fmt + ("" if FORMATS[fmt].layout == "folder" else ".data"))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("space", ["original", "standard"])
def test_round_trip_exact_to_a_pixel(ingest, frames, tmp_path, fmt, space):
    boxes = _boxes(ingest, space)
    keys = list(frames.frames)  # background frames too
    opts = {} if fmt == "maxqda" else {"keys": keys}
    path = write_boxes(boxes, _target(tmp_path, fmt), fmt, frames, space, **opts)
    got = read_boxes(path, fmt, frames, space)
    assert not [p for p in got.problems if p.level == "error"], [p.line() for p in got.problems]
    assert sorted(b.key for b in got.boxes) == sorted(b.key for b in boxes)
    by_key = {b.key: b for b in got.boxes}
    for b in boxes:
        g = by_key[b.key]
        assert g.space == space
        err = np.abs(g.to_space(space, frames[b.key].transform).xyxy - b.xyxy).max()
        assert err <= TOL[fmt], (fmt, space, b, g)
        # and in the other space, through the transform, still within a pixel
        other = "standard" if space == "original" else "original"
        t = frames[b.key].transform
        assert np.abs(g.to_space(other, t).xyxy - b.to_space(other, t).xyxy).max() <= 1.0


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_written_in_one_space_read_in_that_space_lands_on_the_truth(ingest, frames, tmp_path, fmt):
    """Write standard boxes as original coordinates, read them back: the standard box is recovered."""
    boxes = _boxes(ingest, "standard")
    path = write_boxes(boxes, _target(tmp_path, fmt), fmt, frames, "original")
    got = {b.key: b.to_space("standard", frames[b.key].transform) for b in read_boxes(path, fmt, frames, "original").boxes}
    for b in boxes:
        scale = frames[b.key].transform.scale
        assert np.abs(got[b.key].xyxy - b.xyxy).max() <= TOL[fmt] * scale + 1e-6


@pytest.mark.parametrize("fmt", ["coco", "cvat", "labelstudio", "voc"])
def test_wrong_space_is_reported(ingest, frames, tmp_path, fmt):
    path = write_boxes(_boxes(ingest, "standard"), _target(tmp_path, fmt), fmt, frames, "standard")
    got = read_boxes(path, fmt, frames, "original")
    assert got.boxes == [] or len(got.boxes) < len(ingest.boxes_std)
    assert any("wrong --space" in p.message for p in got.problems)


def test_yolo_writes_empty_files_for_background_frames(ingest, frames, tmp_path):
    keys = list(frames.frames)
    out = write_boxes(_boxes(ingest, "standard"), tmp_path / "y", "yolo", frames, "standard", keys=keys)
    files = {p.stem: p.read_text() for p in out.glob("*.txt") if p.name != "classes.txt"}
    assert len(files) == len(keys)
    for k in keys:
        stem = frames[k].image_path.rsplit("/", 1)[-1][:-4]
        assert (files[stem] == "") == (k not in ingest.boxes_std)


def test_yolo_other_class_is_skipped_with_a_warning(ingest, frames, tmp_path):
    k = next(iter(ingest.boxes_std))
    stem = frames[k].image_path.rsplit("/", 1)[-1][:-4]
    (tmp_path / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.1 0.1\n")
    got = read_boxes(tmp_path, "yolo", frames, "standard")
    assert len(got.boxes) == 1 and got.boxes[0].key == k
    assert [p.level for p in got.problems] == ["warning"]


def test_maxqda_keys_columns_separator_and_row_space(ingest, frames, tmp_path):
    from echoavc.settings import MaxqdaColumns

    keys = list(ingest.boxes_std)
    b0, b1, b2 = (ingest.boxes_original()[k] for k in keys[:3])
    s3 = ingest.boxes_std[keys[3]]
    rows = [
        {"Bild": keys[0], "X": b0[0], "Y": b0[1], "B": b0[2] - b0[0], "H": b0[3] - b0[1], "Raum": ""},
        {"Bild": frames[keys[1]].image_path, "X": b1[0], "Y": b1[1], "B": b1[2] - b1[0], "H": b1[3] - b1[1], "Raum": ""},
        {"Bild": frames[keys[2]].image_path.split("/")[-1], "X": b2[0], "Y": b2[1], "B": b2[2] - b2[0],
         "H": b2[3] - b2[1], "Raum": "original"},
        {"Bild": keys[3], "X": s3[0], "Y": s3[1], "B": s3[2] - s3[0], "H": s3[3] - s3[1], "Raum": "standard"},
        {"Bild": "nope.png", "X": 1, "Y": 1, "B": 2, "H": 2, "Raum": ""},
    ]
    p = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(p, index=False, sep=";")
    cols = MaxqdaColumns(image="Bild", x="X", y="Y", width="B", height="H", space="Raum")
    got = read_boxes(p, "maxqda", frames, "original", columns=cols)
    assert [b.key for b in got.boxes] == keys[:4]
    assert [b.space for b in got.boxes] == ["original", "original", "original", "standard"]
    std = {b.key: b.to_space("standard", frames[b.key].transform).xyxy for b in got.boxes}
    for k in keys[:4]:
        assert np.abs(std[k] - np.array(ingest.boxes_std[k])).max() < 1e-6
    assert len(got.problems) == 1 and "nope.png" in got.problems[0].message


def test_maxqda_split_key_columns_and_missing_column(ingest, frames, tmp_path):
    k = next(iter(ingest.boxes_std))
    sha, idx = k.split(":")
    p = tmp_path / "m.csv"
    pd.DataFrame([{"source_sha256": sha, "frame_index": idx, "x": 1, "y": 2, "width": 3, "height": 4}]).to_csv(p, index=False)
    got = read_boxes(p, "maxqda", frames, "standard")
    assert got.boxes[0].key == k and got.boxes[0].xyxy.tolist() == [1, 2, 4, 6]
    pd.DataFrame([{"image": k, "x": 1, "y": 2, "w": 3, "height": 4}]).to_csv(p, index=False)
    with pytest.raises(EchoAVCError, match="width"):
        read_boxes(p, "maxqda", frames, "standard")


def test_labelstudio_rotated_rectangle_reads_as_enclosing_box(ingest, frames, tmp_path):
    k = next(iter(ingest.boxes_std))
    task = [{"id": 1, "data": {"image": "/data/upload/3/" + frames[k].image_path.split("/")[-1]},
             "annotations": [{"result": [{"type": "rectanglelabels", "original_width": 128, "original_height": 128,
                                          "value": {"x": 25, "y": 25, "width": 25, "height": 25, "rotation": 90,
                                                    "rectanglelabels": ["aortic_valve"]}}]}]}]
    p = tmp_path / "ls.json"
    p.write_text(json.dumps(task))
    got = read_boxes(p, "labelstudio", frames, "standard")
    assert np.allclose(got.boxes[0].xyxy, [0, 32, 32, 64], atol=1e-6)
    assert any("rotated" in q.message for q in got.problems)


def test_registry_and_bad_files(frames, tmp_path):
    assert set(FORMATS) == {"maxqda", "yolo", "coco", "voc", "labelstudio", "cvat"}
    with pytest.raises(EchoAVCError, match="unknown box format"):
        get_format("kitti")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EchoAVCError, match="not JSON"):
        read_boxes(bad, "coco", frames, "standard")
    with pytest.raises(EchoAVCError, match="space"):
        read_boxes(bad, "coco", frames, "pixels")
