"""int8 copies of a bundle's ONNX models for CPU screening: static quantisation (onnxruntime.quantization, QDQ)
calibrated on frames of the validation patients at training time.

The detector's decode head (the box distribution, the anchor grid and the sigmoid of the last module) stays in
float: it turns the feature maps into pixel coordinates and scores, where 8-bit steps would move boxes. The
calibration frames only set each activation's range; they are read, used and dropped: a bundle never holds an
image, only the ranges in the int8 graphs and a count of what set them (``bundle.json``'s ``int8`` record).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from echoavc.files import atomic_write_with

__all__ = ["INT8_DETECTOR", "INT8_CLASSIFIER", "quantise_detector", "quantise_classifier", "decode_head_nodes",
           "calibration_inputs", "calibration_from_table", "write_int8_models"]

INT8_DETECTOR = "detector.int8.onnx"
#: inside the bundle's classifier folder
INT8_CLASSIFIER = "model.int8.onnx"
#: at most this many calibration frames (crops) are used: ranges settle well before
MAX_CALIBRATION = 64


class _Feed:
    """onnxruntime's CalibrationDataReader over a list of single-item batches."""

    def __init__(self, name: str, batches: Sequence[np.ndarray]):
        self.items = iter([{name: b} for b in batches])

    def get_next(self):
        return next(self.items, None)


def decode_head_nodes(model) -> list[str]:
    """Names of the nodes of an Ultralytics detector's decode head: everything in its last module (``/model.N/``)
    but the convolutions of its two branches, and the whole distribution-focal-loss (``dfl``) part."""
    import re

    index = [int(m.group(1)) for n in model.graph.node if (m := re.match(r"/model\.(\d+)/", n.name))]
    if not index:
        return []
    last = f"/model.{max(index)}/"
    return [n.name for n in model.graph.node if n.name.startswith(last)
            and (n.op_type != "Conv" or "/dfl/" in n.name)]


def _quantise(src: Path, dst: Path, input_name: str, batches: Sequence[np.ndarray],
              exclude=lambda model: []) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not batches:
        raise ValueError("no calibration inputs")

    class Feed(_Feed, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="echoavc-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        skip = exclude(onnx.load(str(pre)))

        def write(out: Path) -> None:
            quantize_static(str(pre), str(out), Feed(input_name, batches), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            nodes_to_exclude=skip)

        return atomic_write_with(dst, write)


def calibration_inputs(items: Sequence[np.ndarray], limit: int = MAX_CALIBRATION) -> list[np.ndarray]:
    """At most ``limit`` evenly spaced items (every kind of frame the list holds, not only its start)."""
    if len(items) <= limit:
        return list(items)
    return [items[int(round(i))] for i in np.linspace(0, len(items) - 1, limit)]


def quantise_detector(onnx_path: str | Path, dst: str | Path, frames: Sequence[np.ndarray], imgsz: int) -> dict:
    """``dst``: the detector ``onnx_path`` in int8 (decode head in float), calibrated on standard ``frames``
    letterboxed as the detector sees them. Returns the record of what was done (no pixels)."""
    from echoavc.detector.predict import preprocess

    use = calibration_inputs(frames)
    batches = [preprocess([f], imgsz)[0] for f in use]
    _quantise(Path(onnx_path), Path(dst), "images", batches, decode_head_nodes)
    return {"file": Path(dst).name, "calibration_frames": len(use), "float_part": "decode head"}


def quantise_classifier(onnx_path: str | Path, dst: str | Path, crops: Sequence[np.ndarray], mean, std) -> dict:
    """``dst``: the classifier ``onnx_path`` in int8, calibrated on prepared valve ``crops`` (uint8, S x S)."""
    from echoavc.preprocess.crop import normalise

    use = calibration_inputs(crops)
    _quantise(Path(onnx_path), Path(dst), "crops", [normalise(c, mean, std) for c in use])
    return {"file": Path(dst).name, "calibration_crops": len(use)}


def write_int8_models(folder: Path, frames, crops, source: str, imgsz: int) -> dict:
    """The int8 copies of bundle ``folder``'s two ONNX models; their record for bundle.json's ``int8``."""
    from echoavc.classifier.predict import read_meta

    folder = Path(folder)
    norm = read_meta(folder / "classifier")["normalisation"]
    return {"method": "onnxruntime static quantisation, QDQ, uint8 activations, int8 per-channel weights",
            "calibration_source": source,
            "detector": quantise_detector(folder / "detector.onnx", folder / INT8_DETECTOR, frames, imgsz),
            "classifier": quantise_classifier(folder / "classifier" / "model.onnx",
                                              folder / "classifier" / INT8_CLASSIFIER, crops, norm["mean"],
                                              norm["std"])}


def calibration_from_table(table, split, clips, crop, noise_reduction: bool, part: str = "val") -> tuple:
    """(standard frames, prepared valve crops, where they come from) of ``part``'s patients for the int8 models:
    evenly spaced valve and other-view frames of the table, and crops of the boxes the screening path found on
    them (``clips``: :func:`echoavc.train.validation_screening`'s results, keyed by source sha256)."""
    import cv2

    from echoavc.detector.evaluate import part_frames
    from echoavc.preprocess.crop import prepare_crop

    rows = part_frames(table, split, part)
    if rows.empty:
        return [], [], f"no {part} frames"
    path_of = {(str(s), int(k)): p for s, k, p in zip(rows["source_sha256"], rows["frame_index"], rows["image_path"])}

    def read(p):
        return cv2.imread(str(table.image_file(p)), cv2.IMREAD_GRAYSCALE)

    frames = [read(p) for p in calibration_inputs(list(rows["image_path"]))]
    boxed = [(path_of[(c.source, f.frame_index)], f.valve_box) for c in clips for f in c.frames
             if f.valve_box and (c.source, f.frame_index) in path_of]
    if not boxed:  # the detector found no valve there: the annotated boxes (what the classifier trained on)
        valve = rows[(rows["role"] == "valve") & rows["x1"].notna()]
        boxed = list(zip(valve["image_path"], valve[["x1", "y1", "x2", "y2"]].to_numpy(float).tolist()))
    crops = [prepare_crop(read(p), box, crop, noise_reduction) for p, box in calibration_inputs(boxed)]
    patients = rows["patient_id"].nunique()
    return ([f for f in frames if f is not None], crops,
            f"{part} part: {patients} patients' standard frames and their valve crops")
