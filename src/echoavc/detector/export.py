"""Export a trained detector to ONNX (Ultralytics' exporter, simplified with onnxslim, dynamic batch).

The ONNX graph gives Ultralytics' raw output ``(N, 5, anchors)``, so :mod:`echoavc.detector.predict` runs it
with the same pre- and post-processing as the PyTorch checkpoint. The model's name as built and its image
size go into the ONNX metadata (``echoavc_model_name``, ``imgsz``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from echoavc import runtime
from echoavc.detector.model import checkpoint_info
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text, atomic_write_with


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
    from ultralytics.utils import LOGGER

    # Ultralytics writes the .onnx beside the weights: export a copy in a temporary folder
    with tempfile.TemporaryDirectory(prefix="echoavc-export-") as tmp:
        src = Path(tmp) / "model.pt"
        shutil.copyfile(weights, src)
        made = None
        error = None
        level = LOGGER.level
        LOGGER.setLevel(logging.WARNING)  # its closing "Predict: yolo predict ..." hints are for its own CLI
        try:
            for dyn in ([True, False] if dynamic else [False]):
                try:
                    made = YOLO(str(src)).export(format="onnx", imgsz=size, dynamic=dyn, simplify=simplify,
                                                 opset=opset, device="cpu", batch=1,
                                                 verbose=False)
                    break
                except Exception as exc:  # noqa: BLE001 (exporter errors vary with torch/onnx versions)
                    error = exc
                finally:
                    runtime.all_cores()
        finally:
            LOGGER.setLevel(level)
        if not made or not Path(made).is_file():
            raise EchoAVCError(f"ONNX export failed ({type(error).__name__}: {error})", weights)
        _stamp(Path(made), {"echoavc_model_name": ea.get("model_name") or f"{info['model']}, from {weights}",
                            "echoavc_source": weights.name, "imgsz": f"[{size}, {size}]"})
        atomic_write_with(out, lambda tmp: shutil.copyfile(made, tmp))
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


def export_state(weights: str | Path, out: str | Path) -> Path:
    """Write the checkpoint's network as ``out`` (``.safetensors``) plus ``<out>.json`` (its architecture:
    the model yaml, class names, image size); returns ``out``.

    Ultralytics checkpoints are pickles, and unpickling runs code: a model bundle carries these two files
    instead, which :class:`echoavc.detector.predict.StateBackend` loads without unpickling anything.
    """
    import torch
    from safetensors.torch import save_file

    weights, out = Path(weights), Path(out)
    info = checkpoint_info(weights)  # one-line errors for files that are not checkpoints
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    net = ckpt.get("ema") or ckpt["model"]
    state = {k: v.detach().float().contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in net.state_dict().items()}
    ea = info.get("echoavc") or {}
    arch = {"format": STATE_FORMAT, "yaml": net.yaml, "names": {int(k): str(v) for k, v in info["names"].items()},
            "imgsz": int(ea.get("imgsz") or (info.get("imgsz") or 640)),
            "model_name": ea.get("model_name") or f"{info['model']}, from {weights.name}", "model": info["model"]}
    atomic_write_with(out, lambda tmp: save_file(state, str(tmp)))
    atomic_write_text(state_arch_path(out), json.dumps(arch, indent=1, default=str))
    return out


#: Version of the state + architecture pair written by :func:`export_state`.
STATE_FORMAT = "echoavc-detector-state/1"


def state_arch_path(state: str | Path) -> Path:
    p = Path(state)
    return p.with_name(p.name + ".json")
