"""Valve boxes for a batch of standard images: numpy in, numpy out, PyTorch or ONNX behind one interface.

Both backends share every step but the forward pass, so they differ only by floating-point noise:

1. each image (grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA, uint8) is letterboxed to ``imgsz`` x ``imgsz``
   (area interpolation when shrinking, linear when enlarging, centred grey 114 padding), scaled to [0, 1],
   channels first, RGB. Ultralytics 8.4 resizes its training and validation images with linear interpolation
   even when shrinking; on real frames the difference moved valve scores by 0.04 at most (docs/sim2real.md);
2. the network gives ``(N, 4 + classes, anchors)`` (centre x, centre y, width, height in letterboxed pixels,
   then class scores) -- Ultralytics' own raw output, the same from the PyTorch model and the exported ONNX;
3. boxes scoring at least ``min_score`` go through non-maximum suppression (numpy), the best ``max_det``
   are kept in score order and mapped back to the input image, clipped to it.

The top box (the first) is the one the pipeline crops; it counts as a detection at ``conf`` or above.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from echoavc import runtime
from echoavc.errors import EchoAVCError
from echoavc.settings import DetectorSettings

PAD_VALUE = 114
BACKENDS = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class Detections:
    """One image's boxes (k x 4, x1 y1 x2 y2 in the input image's pixels) and scores (k,), best first."""

    boxes: np.ndarray
    scores: np.ndarray

    @property
    def top(self) -> tuple[np.ndarray | None, float]:
        """The highest-scoring box and its score (None, NaN without one)."""
        if self.scores.size == 0:
            return None, float("nan")
        return self.boxes[0], float(self.scores[0])


@dataclass(frozen=True)
class TopBoxes:
    """Per image: the top box (NaN row when none reaches ``conf``), its score and whether it was found."""

    boxes: np.ndarray  #: (N, 4)
    scores: np.ndarray  #: (N,), NaN when nothing was found
    found: np.ndarray  #: (N,) bool


# ------------------------------------------------------------------ pre- and post-processing (numpy)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` RGB array from grey, RGB or RGBA."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:  # OpenCV's copy into three channels: a tenth of np.repeat's time on a 640 x 640 frame
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_GRAY2RGB)
    if a.ndim == 3 and a.shape[2] == 4:
        return np.ascontiguousarray(a[:, :, :3])
    if a.ndim == 3 and a.shape[2] == 3:
        return a
    raise ValueError(f"expected a grey (H, W) or colour (H, W, 3|4) image, got shape {a.shape}")


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """``(padded (size, size, 3), scale, pad_x, pad_y)``: resize keeping the aspect ratio, pad centred."""
    img = as_rgb(image)
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if top or bottom or left or right:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                 value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return img, r, float(left), float(top)


def preprocess(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[tuple]]:
    """``(batch (N, 3, size, size) float32 in [0, 1], [(scale, pad_x, pad_y, h, w)] per image)``."""
    out, geo = [], []
    for im in images:
        a = np.asarray(im)
        lb, r, px, py = letterbox(a, size)
        out.append(lb)
        geo.append((r, px, py, a.shape[0], a.shape[1]))
    batch = np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return np.ascontiguousarray(batch), geo


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first, at most ``limit``."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    x1, y1, x2, y2 = boxes.T
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        o = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[o <= iou]
    return np.asarray(keep, dtype=int)


def postprocess(raw: np.ndarray, geo: list[tuple], min_score: float, nms_iou: float,
                max_det: int) -> list[Detections]:
    """Raw ``(N, 4 + nc, A)`` output -> boxes in each input image, best first."""
    raw = np.asarray(raw, dtype=np.float32)
    out = []
    for i, (r, px, py, h, w) in enumerate(geo):
        p = raw[i].T  # (A, 4 + nc)
        scores = p[:, 4:].max(axis=1)
        keep = scores >= min_score
        p, scores = p[keep], scores[keep]
        xy, wh = p[:, :2], p[:, 2:4]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        k = nms(boxes, scores, nms_iou, max_det)
        b = boxes[k].astype(np.float64)
        b[:, [0, 2]] = np.clip((b[:, [0, 2]] - px) / r, 0, w)
        b[:, [1, 3]] = np.clip((b[:, [1, 3]] - py) / r, 0, h)
        out.append(Detections(b.reshape(-1, 4), scores[k].astype(np.float64)))
    return out


# ------------------------------------------------------------------ backends


class TorchBackend:
    """The Ultralytics checkpoint's network, fused, float32, eval mode."""

    kind = "torch"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0):
        import torch

        from echoavc.detector.model import checkpoint_info

        info = checkpoint_info(path)  # one-line errors for files that are not checkpoints
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        net = ckpt.get("ema") or ckpt["model"]
        self.model = _ready(net, device)
        self.max_batch = _max_batch(device)
        self.device = device
        self.threads = threads
        self.meta = info
        ea = info.get("echoavc") or {}
        self.imgsz = int(ea.get("imgsz") or _first(info.get("imgsz")) or 640)
        self.name = ea.get("model_name") or f"{info['model']}, from {path}"
        self.batch_fixed = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        before = torch.get_num_threads()
        if self.threads and self.threads != before:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                y = self.model(torch.from_numpy(batch).to(self.device))
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
        y = y[0] if isinstance(y, (list, tuple)) else y
        return y.float().cpu().numpy()


def _ready(net, device: str):
    """Fused, float32, eval mode, weights channels-last, as Ultralytics' own predictor holds them (a batch-1
    YOLOv5s forward at 640 on 2 CPU cores: 0.157 s against 0.211 s in one run, 0.172 against 0.176 in another)."""
    import torch

    return net.float().fuse(verbose=False).eval().to(device).to(memory_format=torch.channels_last)


def _max_batch(device: str) -> int | None:
    """PyTorch on CPU runs YOLO one image at a time: batches of 16 took 0.164 s per 640 image against 0.145 s
    one by one (2 cores; onnxruntime is the other way round: 0.132 against 0.144, docs/benchmarks.md)."""
    return 1 if str(device) == "cpu" else None


class StateBackend(TorchBackend):
    """The network rebuilt from its architecture (``<state>.json``) and a safetensors state dict: PyTorch
    without unpickling anything (what a model bundle holds; :func:`echoavc.detector.export.export_state`)."""

    kind = "torch"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from echoavc.detector.export import STATE_FORMAT, state_arch_path

        arch_path = state_arch_path(path)
        try:
            arch = json.loads(arch_path.read_text())
        except (OSError, ValueError) as exc:
            raise EchoAVCError(f"missing or unreadable architecture file {arch_path.name} ({type(exc).__name__})",
                               path) from None
        if not isinstance(arch, dict) or arch.get("format") != STATE_FORMAT or not isinstance(arch.get("yaml"), dict):
            raise EchoAVCError(f"not an echoavc detector architecture ({STATE_FORMAT} expected)", arch_path)
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise EchoAVCError(f"not a readable safetensors file ({type(exc).__name__})", path) from None
        from ultralytics.nn.tasks import DetectionModel

        names = {int(k): v for k, v in (arch.get("names") or {}).items()}
        net = DetectionModel(cfg=dict(arch["yaml"]), ch=3, nc=len(names) or int(arch["yaml"].get("nc", 1)),
                             verbose=False)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise EchoAVCError(f"weights do not fit the architecture ({len(missing)} missing, {len(unexpected)} "
                               "unexpected tensors)", path)
        net.names = names
        runtime.all_cores()  # building an Ultralytics model may lower torch's thread count
        self.model = _ready(net, device)
        self.max_batch = _max_batch(device)
        self.device = device
        self.threads = threads
        self.meta = arch
        self.imgsz = int(arch.get("imgsz") or 640)
        self.name = arch.get("model_name") or f"{arch.get('model', 'detector')}, from {path.name}"
        self.batch_fixed = None


class OnnxBackend:
    """The exported ONNX model in onnxruntime (CPU, all cores; CUDA when asked and available)."""

    kind = "onnx"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or runtime.all_cores()
        opts.inter_op_num_threads = 1
        # no busy-waiting between runs: decoding and the other model share the cores (benchmarks/bench_predict.py)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device not in ("cpu", "") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own types)
            raise EchoAVCError(f"not a readable ONNX model ({type(exc).__name__})", path) from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.meta = dict(meta)
        size = _first(_parse(meta.get("imgsz"))) or (inp.shape[2] if isinstance(inp.shape[2], int) else None)
        self.imgsz = int(size or 640)
        self.name = meta.get("echoavc_model_name") or f"{path.name} (ONNX)"
        self.batch_fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.max_batch = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.batch_fixed and batch.shape[0] != self.batch_fixed:
            return np.concatenate([self.session.run(None, {self.input_name: batch[i:i + 1]})[0]
                                   for i in range(batch.shape[0])])
        return self.session.run(None, {self.input_name: batch})[0]


def _parse(v):
    if v is None:
        return None
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        return v


def _first(v):
    if isinstance(v, (list, tuple)):
        return v[0] if v else None
    return v


class Detector:
    """Valve boxes from a checkpoint (``.pt``, PyTorch), a state dict (``.safetensors`` + its ``.json``
    architecture, PyTorch without unpickling) or an exported model (``.onnx``, onnxruntime).

    >>> det = Detector("runs/cpu/train/weights/best.pt")        # or "model.onnx"
    >>> top = det.top(images)                                   # standard 640 images in, boxes in them out
    """

    def __init__(self, weights: str | Path, backend: str = "auto", settings: DetectorSettings | None = None,
                 device: str = "cpu"):
        runtime.configure()
        p = Path(weights)
        if not p.is_file():
            raise EchoAVCError("no such weights file", p)
        if backend not in BACKENDS:
            raise EchoAVCError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        suffix = p.suffix.lower()
        if backend == "auto":
            backend = "onnx" if suffix == ".onnx" else "torch"
        if backend == "onnx" and suffix != ".onnx":
            raise EchoAVCError("the onnx backend needs an .onnx file (echoavc detector export)", p)
        if backend == "torch" and suffix == ".onnx":
            raise EchoAVCError("the torch backend needs a .pt or .safetensors file, not ONNX", p)
        self.settings = settings or DetectorSettings()
        self.path = p
        threads = self.settings.threads or runtime.all_cores()
        if backend == "onnx":
            self.backend = OnnxBackend(p, device, threads)
        elif suffix == ".safetensors":
            self.backend = StateBackend(p, device, threads)
        else:
            self.backend = TorchBackend(p, device, threads)

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def imgsz(self) -> int:
        return self.backend.imgsz

    def raw(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple]]:
        """The network's raw output for ``images`` and their letterbox geometry."""
        batch, geo = preprocess(images, self.imgsz)
        return self.backend(batch), geo

    def predict(self, images: Sequence[np.ndarray] | np.ndarray, min_score: float | None = None,
                max_det: int | None = None, batch_size: int | None = None) -> list[Detections]:
        """Boxes and scores for each image (all down to ``min_score``, default ``settings.min_score``)."""
        s = self.settings
        imgs = list(images) if not (isinstance(images, np.ndarray) and images.ndim == 2) else [images]
        bs = batch_size or s.predict_batch
        bs = min(bs, self.backend.max_batch or bs)
        out: list[Detections] = []
        for i in range(0, len(imgs), bs):
            raw, geo = self.raw(imgs[i:i + bs])
            out += postprocess(raw, geo, s.min_score if min_score is None else min_score, s.nms_iou,
                               s.max_det if max_det is None else max_det)
        return out

    def top(self, images, conf: float | None = None, batch_size: int | None = None) -> TopBoxes:
        """The top box per image, a detection when its score is at least ``conf`` (``settings.conf``)."""
        c = self.settings.conf if conf is None else conf
        dets = self.predict(images, min_score=c, max_det=1, batch_size=batch_size)
        n = len(dets)
        boxes, scores = np.full((n, 4), np.nan), np.full(n, np.nan)
        for i, d in enumerate(dets):
            if d.scores.size:
                boxes[i], scores[i] = d.boxes[0], d.scores[0]
        return TopBoxes(boxes, scores, np.isfinite(scores))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB (grey stays 2-D), read the way Ultralytics reads training images (OpenCV)."""
    p = Path(path)
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise EchoAVCError("cannot read image", p)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


__all__ = ["Detector", "Detections", "TopBoxes", "letterbox", "preprocess", "postprocess", "nms", "read_image",
           "as_rgb"]
