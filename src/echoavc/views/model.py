"""The view network and a loaded view model.

A timm backbone (one grey input channel, five logits) on the standard image downscaled to ``input_size``; the
folder holds ``model.safetensors`` (weights, never a pickle), ``views.json`` (settings, classes, validation
figures) and, once asked for, ``model.onnx``. :class:`ViewModel` takes standard frames (640 px, grey or RGB) and
gives class probabilities; :func:`clip_view` turns a clip's frame probabilities into its view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.views.classes import VIEW_CLASSES

__all__ = ["build", "prepare_images", "ViewModel", "ClipView", "clip_view", "export_onnx", "read_meta",
           "MODEL_FILE", "META_FILE", "ONNX_FILE", "MODEL_FORMAT"]

MODEL_FILE, META_FILE, ONNX_FILE = "model.safetensors", "views.json", "model.onnx"
MODEL_FORMAT = "echoavc-views/1"


def build(backbone: str, n_classes: int = len(VIEW_CLASSES)):
    """The timm network, from scratch (nothing downloads), one input channel."""
    import timm

    from echoavc import runtime

    runtime.configure()
    if not timm.is_model(backbone):
        raise EchoAVCError(f"unknown timm backbone {backbone!r}")
    return timm.create_model(backbone, pretrained=False, num_classes=n_classes, in_chans=1)


def prepare_images(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Standard frames (H, W) grey or (H, W, 3) RGB, uint8 -> float32 (N, 1, size, size) in [0, 1]."""
    out = np.empty((len(images), 1, size, size), np.float32)
    for i, img in enumerate(images):
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        out[i, 0] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return out


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise EchoAVCError(f"no {META_FILE}: not a view model folder (echoavc views train)", folder)
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        raise EchoAVCError("view model settings are not JSON", path) from None
    if meta.get("format") != MODEL_FORMAT:
        raise EchoAVCError(f"not an echoavc view model (format {meta.get('format')!r})", path)
    return meta


def export_onnx(model, path: str | Path, size: int, opset: int = 17) -> Path:
    """ONNX graph: input ``images`` float32 N x 1 x S x S, output ``logits`` N x classes (dynamic batch)."""
    import warnings

    import torch

    from echoavc.files import atomic_write_with

    model.eval()
    x = torch.zeros(1, 1, size, size)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(tmp), input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}}, opset_version=opset,
                              dynamo=False)

    return atomic_write_with(path, write)


@dataclass(frozen=True)
class ClipView:
    """A clip's view: the class with the highest mean probability over the frames read, and that probability."""

    view: str
    probability: float
    #: mean probability of every class (VIEW_CLASSES order)
    probabilities: tuple[float, ...]
    frames: int

    def to_dict(self) -> dict:
        return {"view": self.view, "probability": round(self.probability, 4),
                "probabilities": dict(zip(VIEW_CLASSES, (round(p, 4) for p in self.probabilities))),
                "frames": self.frames}


def clip_view(frame_probabilities: np.ndarray, classes: Sequence[str] = VIEW_CLASSES) -> ClipView:
    """The view of a clip from its frames' class probabilities (n, K): the mean, then its largest class."""
    p = np.asarray(frame_probabilities, np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError("clip_view needs an (n, K) array with n >= 1")
    mean = p.mean(axis=0)
    k = int(np.argmax(mean))
    return ClipView(str(classes[k]), float(mean[k]), tuple(float(v) for v in mean), len(p))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ViewModel:
    """A trained view network: standard frames in, class probabilities out (PyTorch or onnxruntime)."""

    def __init__(self, meta: dict, run, model=None, folder: Path | None = None):
        self.meta = meta
        self.classes = tuple(meta["classes"])
        self.input_size = int(meta["input_size"])
        self.frames_per_clip = int(meta.get("frames_per_clip", 8))
        self._run = run
        self.model = model
        self.folder = folder

    @classmethod
    def load(cls, folder: str | Path, backend: str = "torch", threads: int = 0) -> "ViewModel":
        """``backend``: torch, or onnx (reads ``model.onnx``; exports it beside the weights when missing)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = read_meta(folder)
        if backend not in ("torch", "onnx"):
            raise EchoAVCError(f"backend must be torch or onnx, not {backend!r}")
        onnx_path = folder / ONNX_FILE
        if backend == "onnx" and onnx_path.is_file():
            return cls(meta, _onnx_runner(onnx_path, threads), None, folder)
        if not (folder / MODEL_FILE).is_file():
            raise EchoAVCError(f"no {MODEL_FILE}", folder)
        model = build(meta["backbone"], len(meta["classes"]))
        try:
            model.load_state_dict(load_file(str(folder / MODEL_FILE)))
        except RuntimeError as exc:
            raise EchoAVCError(f"weights do not fit {meta['backbone']}: {str(exc)[:200]}", folder / MODEL_FILE) from None
        model.eval()
        if backend == "onnx":
            export_onnx(model, onnx_path, int(meta["input_size"]))
            return cls(meta, _onnx_runner(onnx_path, threads), None, folder)
        return cls(meta, _torch_runner(model), model, folder)

    def logits(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        return np.concatenate([self._run(x[i:i + batch]) for i in range(0, len(x), batch)]) if len(x) else \
            np.zeros((0, len(self.classes)), np.float32)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, K) class probabilities of standard frames."""
        return _softmax(self.logits(prepare_images(images, self.input_size)).astype(np.float64))

    def clip(self, images: Sequence[np.ndarray]) -> ClipView:
        """The view of a clip from up to ``frames_per_clip`` evenly spaced frames."""
        n, k = len(images), self.frames_per_clip
        pick = range(n) if k <= 0 or n <= k else sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})
        return clip_view(self.predict_proba([images[i] for i in pick]), self.classes)


def _torch_runner(model):
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return run


def _onnx_runner(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["logits"], {"images": np.ascontiguousarray(x)})[0].astype(np.float32)
