"""Export a trained detector to ONNX (Ultralytics' exporter, simplified with onnxslim, dynamic batch).

The ONNX graph gives Ultralytics' raw output ``(N, 5, anchors)``, so :mod:`echoavc.detector.predict` runs it
with the same pre- and post-processing as the PyTorch checkpoint. The model's name as built and its image
size go into the ONNX metadata (``echoavc_model_name``, ``imgsz``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from echoavc import runtime
from echoavc.detector.model import checkpoint_info
from echoavc.errors import EchoAVCError


def export_onnx(weights: str | Path, out: str | Path | None = None, imgsz: int | None = None,
                dynamic: bool = True, simplify: bool = True, opset: int | None = None) -> Path:
    """Write ``out`` (default: beside the weights, ``.onnx``) from an Ultralytics checkpoint; returns it.

    ``imgsz`` defaults to the training size. With ``dynamic`` the batch (and image size) axes are dynamic;
    if that export fails, a fixed batch of 1 is exported instead (the predictor then feeds images one by one).
    """
    runtime.configure()
    weights = Path(weights)
    info = checkpoint_info(weights)
    ea = info.get("echoavc") or {}
    size = int(imgsz or ea.get("imgsz") or (info.get("imgsz") or 640))
    out = Path(out) if out is not None else weights.with_suffix(".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)

    from ultralytics import YOLO

    # Ultralytics writes the .onnx beside the weights: export a copy in a temporary folder
    with tempfile.TemporaryDirectory(prefix="echoavc-export-") as tmp:
        src = Path(tmp) / "model.pt"
        shutil.copyfile(weights, src)
        made = None
        error = None
        for dyn in ([True, False] if dynamic else [False]):
            try:
                made = YOLO(str(src)).export(format="onnx", imgsz=size, dynamic=dyn, simplify=simplify,
                                             opset=opset, device="cpu", half=False, nms=False, batch=1,
                                             verbose=False)
                break
            except Exception as exc:  # noqa: BLE001 (exporter errors vary with torch/onnx versions)
                error = exc
            finally:
                runtime.all_cores()
        if not made or not Path(made).is_file():
            raise EchoAVCError(f"ONNX export failed ({type(error).__name__}: {error})", weights)
        _stamp(Path(made), {"echoavc_model_name": ea.get("model_name") or f"{info['model']}, from {weights}",
                            "echoavc_source": weights.name, "imgsz": f"[{size}, {size}]"})
        tmp_out = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(made, tmp_out)
        os.replace(tmp_out, out)
    return out


def _stamp(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p for p in model.metadata_props}
    for k, v in meta.items():
        if k in props:
            props[k].value = str(v)
        else:
            model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))
