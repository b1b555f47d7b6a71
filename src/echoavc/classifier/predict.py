"""Prepared crops in, calibrated probabilities out: one interface over PyTorch and ONNX Runtime.

    clf = Classifier.load("runs/classifier")            # or backend="onnx" (exports model.onnx once)
    crops = clf.box_crops(image, box)                    # the stored crop size, margin, noise reduction, test boxes
    p = clf.predict_proba(crops, per_box=clf.boxes_per_probability)   # calibrated P(calcified) of the box
    calls = p >= clf.threshold
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from echoavc.classifier.calibrate import Calibration
from echoavc.errors import EchoAVCError
from echoavc.preprocess.crop import averaged_boxes, normalise, prepare_crop
from echoavc.settings import CropSettings, from_dict

if TYPE_CHECKING:  # torch is imported only where a PyTorch model is built: ONNX screening workers start faster
    from echoavc.classifier.model import AVCNet

__all__ = ["Classifier", "average_per_box", "load_model", "member_count", "export_onnx", "ONNX_FILE",
           "FEATURES_OUTPUT"]

ONNX_FILE = "model.onnx"
#: the ONNX graph's second output: pooled backbone features, for the grade head (one backbone pass for both)
FEATURES_OUTPUT = "features"
#: a classifier folder: weights, stored settings (``echoavc.classifier.train.save_model`` writes both)
MODEL_FILE = "model.safetensors"
META_FILE = "classifier.json"
MODEL_FORMAT = "echoavc-classifier/1"
#: an ensemble's folder (``members`` > 1: every member's weights in one file): its own format, so that an echoavc
#: made before ensembles refuses it by name instead of failing on the weights; single networks keep format 1
ENSEMBLE_FORMAT = "echoavc-classifier/2"


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file():
        raise EchoAVCError(f"no {META_FILE}: not a classifier folder (echoavc classifier train)", folder)
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise EchoAVCError("classifier settings are not JSON", path) from None
    if meta.get("format") not in (MODEL_FORMAT, ENSEMBLE_FORMAT):
        raise EchoAVCError(f"not an echoavc classifier (format {meta.get('format')!r})", path)
    return meta


def member_count(meta: dict) -> int:
    """How many networks a classifier folder's ``classifier.json`` describes (1 when it does not say: folders
    made before ensembles, ``echoavc.classifier.ensemble``)."""
    n = meta.get("members", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise EchoAVCError(f"{META_FILE}: members must be a whole number >= 1, not {n!r}")
    return n


def load_model(folder: str | Path) -> tuple[AVCNet, dict]:
    """The network (eval mode) and its stored settings. Weights are a safetensors state dict, never a pickle."""
    from safetensors.torch import load_file

    from echoavc.classifier.ensemble import as_model
    from echoavc.classifier.model import build

    folder = Path(folder)
    meta = read_meta(folder)
    if not (folder / MODEL_FILE).is_file():
        raise EchoAVCError(f"no {MODEL_FILE}", folder)
    model = as_model([build(meta["backbone"], meta["pooling"], input_size=int(meta["input_size"]),
                            hidden=int(meta["hidden"]), dropout=float(meta.get("dropout", 0.0)), pretrained="none")
                      for _ in range(member_count(meta))])
    try:
        model.load_state_dict(load_file(str(folder / MODEL_FILE)))
    except RuntimeError as exc:
        raise EchoAVCError(f"weights do not fit {meta['backbone']}/{meta['pooling']}: {str(exc)[:200]}",
                           folder / MODEL_FILE) from None
    model.eval()
    return model, meta


def export_onnx(model: AVCNet, path: str | Path, opset: int = 17) -> Path:
    """Export to ONNX: input ``crops`` float32 N x 3 x S x S; outputs ``logits`` (N) and ``features`` (N x
    n_features, the pooled backbone features the grade head reads), both from one backbone pass; dynamic batch.
    Graphs exported before the grade head shared them have ``logits`` only (still read)."""
    import torch

    import warnings

    from echoavc.files import atomic_write_with

    x = torch.zeros(1, 3, model.input_size, model.input_size)
    model.eval()

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.avc = model

        def forward(self, crops):
            return self.avc.logits_and_pooled(crops)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(LogitsAndFeatures().eval(), (x,), str(tmp), input_names=["crops"],
                              output_names=["logits", FEATURES_OUTPUT],
                              dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}, FEATURES_OUTPUT: {0: "n"}},
                              opset_version=opset, dynamo=False)

    return atomic_write_with(path, write)


def average_per_box(logits: np.ndarray, per_box: int) -> np.ndarray:
    """The mean logit of each run of ``per_box`` consecutive crops (one box's test boxes)."""
    z = np.asarray(logits)
    if per_box == 1:
        return z
    if per_box < 1 or len(z) % per_box:
        raise EchoAVCError(f"{len(z)} crops are not whole runs of {per_box} test boxes")
    return z.reshape(-1, per_box).mean(1)


class _TorchBackend:
    def __init__(self, model: AVCNet):
        self.model = model.eval()

    has_features = True

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).float().numpy()

    def with_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            z, f = self.model.logits_and_pooled(torch.from_numpy(x))
        return z.float().numpy(), f.float().numpy()


class OnnxBackend:
    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the detector's session
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        #: the graph also gives the pooled features (exported since bundle format 3)
        self.has_features = FEATURES_OUTPUT in {o.name for o in self.session.get_outputs()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"crops": x})[0].astype(np.float32)

    def with_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z, f = self.session.run(["logits", FEATURES_OUTPUT], {"crops": x})
        return z.astype(np.float32), f.astype(np.float32)


class Classifier:
    """A trained classifier with its preprocessing, calibration and threshold."""

    def __init__(self, meta: dict, backend, model: AVCNet | None = None, folder: Path | None = None):
        self.meta = meta
        self.backend = backend
        self.model = model
        self.folder = folder
        self.crop = from_dict(CropSettings, meta["crop"])
        self.noise_reduction = bool(meta["noise_reduction"])
        self.mean = meta["normalisation"]["mean"]
        self.std = meta["normalisation"]["std"]
        self.calibration = Calibration.from_dict(meta["calibration"])
        self.threshold = float(meta["threshold"])
        self._cam = None  # Grad-CAM of a normalised crop: x -> (heat map, logit), made on first use (grad_cam)

    @classmethod
    def load(cls, folder: str | Path, backend: str = "torch", threads: int = 0,
             onnx_file: str | None = None) -> "Classifier":
        """``backend``: ``torch`` or ``onnx`` (exports ``model.onnx`` beside the weights on first use);
        ``onnx_file``: another ONNX graph in the folder to run instead (a bundle's int8 copy), as it is."""
        folder = Path(folder)
        if backend == "torch":
            model, meta = load_model(folder)
            return cls(meta, _TorchBackend(model), model, folder)
        if backend == "onnx" and onnx_file is not None:
            return cls(read_meta(folder), OnnxBackend(folder / onnx_file, threads), None, folder)
        if backend == "onnx":
            onnx_path = folder / ONNX_FILE
            meta = read_meta(folder)
            if not onnx_path.is_file() or onnx_path.stat().st_mtime < (folder / MODEL_FILE).stat().st_mtime:
                model, _ = load_model(folder)
                export_onnx(model, onnx_path)
            return cls(meta, OnnxBackend(onnx_path, threads), None, folder)
        raise EchoAVCError(f"backend must be torch or onnx, not {backend!r}")

    def grad_cam(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """Grad-CAM of one prepared crop: (heat map (S, S) in [0, 1], logit). With the PyTorch model by autograd;
        otherwise in closed form on the folder's float ONNX graph (:mod:`echoavc.classifier.cam`, no torch), which
        also explains an int8 classifier; a graph exported before its features output falls back to PyTorch."""
        if self._cam is None:
            self._cam = self._grad_cam_of()
        return self._cam(normalise(self._checked(crop)[:1], self.mean, self.std))

    def _grad_cam_of(self):
        """x -> (heat map, logit): the closed form on the float ONNX graph where there is no PyTorch model and
        the graph allows it, else autograd on the PyTorch model (loaded from the folder if need be)."""
        model = self.model
        if model is None:
            try:
                from echoavc.classifier.cam import OnnxGradCam

                return OnnxGradCam(self.folder, ONNX_FILE, self.meta["pooling"])
            except (EchoAVCError, OSError):
                model = load_model(self.folder)[0]
        import torch

        from echoavc.classifier.gradcam import grad_cam

        return lambda x: grad_cam(model, torch.from_numpy(x))

    def prepare(self, image: np.ndarray, box) -> np.ndarray:
        """The prepared crop of ``box`` in a standard image, with the model's stored crop settings."""
        return prepare_crop(image, box, self.crop, self.noise_reduction)

    @property
    def boxes_per_probability(self) -> int:
        """How many crops one probability averages (``CropSettings.test_boxes``; 1 for models made before it)."""
        return int(self.crop.test_boxes)

    def test_boxes_of(self, box) -> np.ndarray:
        """(n, 4): ``box`` and its fixed test boxes, the box itself first (n = :attr:`boxes_per_probability`)."""
        return averaged_boxes(box, self.boxes_per_probability, self.crop.jitter)

    def box_crops(self, image: np.ndarray, box) -> np.ndarray:
        """(n, S, S): the prepared crops of :meth:`test_boxes_of` ``box``; give them to :meth:`predict_proba` with
        ``per_box=n`` (n = :attr:`boxes_per_probability`)."""
        return np.stack([self.prepare(image, b) for b in self.test_boxes_of(box)])

    def _checked(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if crops.shape[1:] != (self.crop.size, self.crop.size):
            raise EchoAVCError(f"crops must be {self.crop.size}x{self.crop.size} (use Classifier.prepare), "
                               f"got {crops.shape[1:]}")
        return crops

    def logits(self, crops: np.ndarray, batch: int = 64) -> np.ndarray:
        crops = self._checked(crops)
        out = [self.backend(normalise(crops[i:i + batch], self.mean, self.std)) for i in range(0, len(crops), batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def predict_proba(self, crops: np.ndarray, per_box: int = 1) -> np.ndarray:
        """Calibrated P(calcified) per prepared crop; with ``per_box`` n, per run of n crops of one box (its test
        boxes, :meth:`box_crops`): the mean of their logits, calibrated, as the model was calibrated."""
        return self.calibration(average_per_box(self.logits(crops), per_box))

    @property
    def has_features(self) -> bool:
        """True when one pass gives the pooled features too (PyTorch; ONNX graphs exported since bundle format 3)."""
        return bool(getattr(self.backend, "has_features", False))

    def logits_and_features(self, crops: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N,), pooled features (N, D)) of prepared crops from ONE backbone pass (``has_features``)."""
        crops = self._checked(crops)
        if not self.has_features:
            raise EchoAVCError("this classifier's ONNX graph has no features output (exported by an older echoavc)",
                               self.folder)
        parts = [self.backend.with_features(normalise(crops[i:i + batch], self.mean, self.std))
                 for i in range(0, len(crops), batch)]
        if not parts:
            return np.zeros(0, np.float32), np.zeros((0, 0), np.float32)
        return np.concatenate([z for z, _ in parts]), np.concatenate([f for _, f in parts])

    def predict_proba_and_features(self, crops: np.ndarray, per_box: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated P(calcified), pooled features) from one pass: what the Screener gives the grade head. With
        ``per_box`` n (as :meth:`predict_proba`), the features are those of each box itself (the first of its n
        crops): the grade head was fitted on the box's own crop."""
        z, f = self.logits_and_features(crops)
        return self.calibration(average_per_box(z, per_box)), f[::per_box]

    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, calls at the stored threshold)."""
        p = self.predict_proba(crops)
        return p, p >= self.threshold
