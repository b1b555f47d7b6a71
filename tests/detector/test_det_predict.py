"""Prediction: letterbox geometry, NMS and box mapping by hand; PyTorch and ONNX give the same boxes."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.detector.predict import Detector, letterbox, nms, postprocess, preprocess
from echoavc.errors import EchoAVCError
from echoavc.evaluate.detection import iou_many


def test_letterbox_square_and_wide():
    img = np.zeros((640, 640), np.uint8)
    lb, r, px, py = letterbox(img, 320)
    assert lb.shape == (320, 320, 3) and r == 0.5 and (px, py) == (0, 0)
    wide = np.full((100, 200, 3), 7, np.uint8)
    lb, r, px, py = letterbox(wide, 64)
    assert r == 0.32 and px == 0 and py == 16
    assert (lb[:16] == 114).all() and (lb[16:48] == 7).all() and (lb[48:] == 114).all()


def test_grey_equals_replicated_rgb():
    g = (np.arange(640 * 640) % 251).astype(np.uint8).reshape(640, 640)
    a, _ = preprocess([g], 96)
    b, _ = preprocess([np.stack([g] * 3, axis=-1)], 96)
    assert a.shape == (1, 3, 96, 96) and a.dtype == np.float32 and np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5, 10).tolist() == [3, 2]  # 3 suppresses 0 (IoU 0.9) and 1; 2 is apart
    assert nms(boxes, scores, 0.95, 10).tolist() == [3, 0, 1, 2]
    assert nms(boxes, scores, 0.5, 1).tolist() == [3]


def test_postprocess_maps_back_to_the_input_image():
    # one image 200 x 100 (w x h) letterboxed to 64: scale 0.32, pad_y 16. A box (cx 32, cy 32, w 16, h 8)
    # in the letterbox is x 24..40, y 28..36 -> in the image x 75..125, y 37.5..62.5
    raw = np.zeros((1, 5, 3), np.float32)
    raw[0, :, 0] = [32, 32, 16, 8, 0.9]
    raw[0, :, 1] = [33, 32, 16, 8, 0.8]  # duplicate: suppressed
    raw[0, :, 2] = [5, 20, 4, 4, 0.0005]  # under min_score
    _, geo = preprocess([np.zeros((100, 200), np.uint8)], 64)
    (d,) = postprocess(raw, geo, 0.001, 0.7, 10)
    assert d.scores.tolist() == pytest.approx([0.9])
    assert d.boxes[0] == pytest.approx([75, 37.5, 125, 62.5])
    (e,) = postprocess(raw, geo, 0.95, 0.7, 10)
    assert e.boxes.shape == (0, 4) and e.top[0] is None and np.isnan(e.top[1])


def test_backends_agree_on_synthetic_frames(tiny_detector, onnx_model):
    from echoavc.detector.predict import read_image

    table = tiny_detector.study.table
    frames = table.frame[table.frame["role"].isin(["valve", "background"])].head(12)
    images = [read_image(table.image_file(p)) for p in frames["image_path"]]
    _assert_agree(tiny_detector.result.best, onnx_model, images)


def test_backends_agree_on_real_echo_clips(tiny_detector, onnx_model, tmp_path):
    """Real ultrasound from pydicom-data, through ingest to standard 640 frames."""
    from testkit import shipped_file

    from echoavc.detector.predict import read_image
    from echoavc.ingest import ingest

    files = [shipped_file(n) for n in ("color3d_jpeg_baseline.dcm", "US1_UNCR.dcm", "OBXXXX1A.dcm")]
    rep = ingest(files, tmp_path / "ing", tmp_path / "keys" / "k.key", progress=False)
    import pandas as pd

    m = pd.read_csv(tmp_path / "ing" / "manifest.csv")
    if m.empty:
        pytest.skip(f"ingest kept no frame: {rep.failures}")
    m = m.groupby("source_sha256").head(4)  # a few frames of each clip
    images = [read_image(tmp_path / "ing" / p) for p in m["image_path"]]
    assert all(im.shape[:2] == (640, 640) for im in images)
    _assert_agree(tiny_detector.result.best, onnx_model, images)


def _assert_agree(pt, onnx, images):
    a, b = Detector(pt), Detector(onnx)
    assert a.backend.kind == "torch" and b.backend.kind == "onnx"
    assert a.imgsz == b.imgsz and a.name == b.name
    ra, _ = a.raw(images)
    rb, _ = b.raw(images)
    assert ra.shape == rb.shape
    assert np.abs(ra - rb).max() <= 1e-2 * max(1.0, np.abs(ra).max())
    ta, tb = a.top(images, conf=0.0), b.top(images, conf=0.0)  # conf 0: every image has a top box
    assert ta.found.all() and tb.found.all()
    for x, y in zip(ta.boxes, tb.boxes):
        assert iou_many(x, y)[0] >= 0.99
    assert np.allclose(ta.scores, tb.scores, atol=1e-3)


def test_detector_errors(tmp_path, tiny_detector):
    with pytest.raises(EchoAVCError, match="no such weights file"):
        Detector(tmp_path / "none.pt")
    with pytest.raises(EchoAVCError, match="needs an .onnx file"):
        Detector(tiny_detector.result.best, backend="onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    with pytest.raises(EchoAVCError, match="not a readable ONNX model"):
        Detector(bad)


def test_onnx_export_is_quiet_and_gives_the_raw_head(tiny_detector, tmp_path):
    """The export asks for external NMS (Ultralytics' default): no warning reaches the user (asking for an
    NMS-free head printed "This model has no one-to-one head" twice into every demo and train), and the graph
    gives the raw one-to-many predictions our own NMS reads: boxes and the one class score per anchor."""
    import onnxruntime as ort

    from echoavc.detector.export import export_onnx
    from testkit import ultralytics_records

    with ultralytics_records() as records:
        path = export_onnx(tiny_detector.result.best, tmp_path / "model.onnx")
    assert [r.getMessage() for r in records] == []  # its logger is at WARNING meanwhile: any record is a warning
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_outputs()
    assert out.shape[1] == 5, out.shape  # x, y, w, h, valve score


def test_grey_frames_become_three_equal_channels():
    from echoavc.detector.predict import as_rgb

    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    for image in (grey, grey[:, :, None], grey[::2, ::3], grey.astype(np.float32) / 255.0):
        want = np.clip(image if image.dtype == np.uint8 else image * 255.0, 0, 255).astype(np.uint8)
        want = want.reshape(want.shape[:2])
        out = as_rgb(image)
        assert out.shape == (*want.shape, 3) and out.dtype == np.uint8
        assert all(np.array_equal(out[:, :, c], want) for c in range(3))
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    assert np.array_equal(as_rgb(rgba), rgba[:, :, :3])
