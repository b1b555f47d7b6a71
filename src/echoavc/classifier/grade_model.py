"""The grade head at screening time, over PyTorch or ONNX Runtime, as :class:`~echoavc.classifier.predict.Classifier`.

    clf = Classifier.load("runs/classifier", backend="onnx")
    grader = GradeModel.on_classifier("runs/classifier", clf)   # check ``has_grade(folder)`` first
    p, features = clf.predict_proba_and_features(crops)          # ONE backbone pass for both
    probs = grader.from_features(features)                       # (N, K) calibrated class probabilities

The head reads the pooled features the classifier's own graph outputs (``features``, exported since bundle
format 3), so the backbone runs once per crop. Older ONNX graphs give logits only; for them the head has its
own graph (``grade.onnx``: input ``crops``, output ``cumulative_logits`` before the temperature: the backbone
and pooling again, followed by the head), which format-2 bundles hold and :meth:`GradeModel.load` still reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echoavc.classifier.grade import GRADE_ONNX, GRADE_STATE, GradeHead, class_probabilities, pooled_features
from echoavc.errors import EchoAVCError

__all__ = ["GradeModel", "ordinal_net", "export_grade_onnx"]


def ordinal_net(model, head: GradeHead):
    """The classifier network with the grade head on its pooled features: crops -> (N, K-1) raw cumulative logits."""
    import torch
    from torch import nn

    class OrdinalNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.avc = model
            for name in ("weight", "cutpoints", "feature_mean", "feature_std"):
                self.register_buffer(name, torch.tensor(getattr(head, name), dtype=torch.float32))

        def forward(self, x):
            f = self.avc.pooled(self.avc.features(x))
            return ((f - self.feature_mean) / self.feature_std) @ self.weight[:, None] - self.cutpoints[None, :]

    return OrdinalNet().eval()


def export_grade_onnx(model, head: GradeHead, path: str | Path, opset: int = 17) -> Path:
    import warnings

    import torch

    from echoavc.files import atomic_write_with

    net = ordinal_net(model, head)
    x = torch.zeros(1, 3, model.input_size, model.input_size)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), str(tmp), input_names=["crops"], output_names=["cumulative_logits"],
                              dynamic_axes={"crops": {0: "n"}, "cumulative_logits": {0: "n"}},
                              opset_version=opset, dynamo=False)

    return atomic_write_with(path, write)


class GradeModel:
    """Prepared crops in, calibrated grade probabilities out (the classifier folder's crop and normalisation)."""

    def __init__(self, head: GradeHead, meta: dict, model=None, session=None, classifier=None):
        self.head, self.meta, self.model, self.session = head, meta, model, session
        #: the Classifier whose one pass gives the features (None: this model runs its own backbone)
        self.classifier = classifier
        self.size = int(meta["crop"]["size"])
        self.mean, self.std = meta["normalisation"]["mean"], meta["normalisation"]["std"]

    @property
    def n_classes(self) -> int:
        return self.head.n_classes

    @classmethod
    def on_classifier(cls, folder: str | Path, classifier) -> "GradeModel":
        """The head of ``folder`` on ``classifier``'s features (``classifier.has_features``): no second backbone."""
        if not classifier.has_features:
            raise EchoAVCError("the classifier's graph gives no features for the grade head", folder)
        return cls(GradeHead.load(folder), classifier.meta, classifier=classifier)

    @classmethod
    def load(cls, folder: str | Path, backend: str = "torch", threads: int = 0) -> "GradeModel":
        """A grade model with its own backbone (``torch``, or ``onnx``: grade.onnx, the two-graph layout of
        format-2 bundles, exported here if missing). Screening uses :meth:`on_classifier` where it can."""
        from echoavc.classifier.predict import MODEL_FILE, load_model, read_meta

        folder = Path(folder)
        head = GradeHead.load(folder)
        if backend == "torch":
            model, meta = load_model(folder)
            return cls(head, meta, model=model)
        if backend == "onnx":
            from echoavc.classifier.predict import OnnxBackend

            meta = read_meta(folder)
            path = folder / GRADE_ONNX
            newest = max((folder / MODEL_FILE).stat().st_mtime, (folder / GRADE_STATE).stat().st_mtime)
            if not path.is_file() or path.stat().st_mtime < newest:
                model, _ = load_model(folder)
                export_grade_onnx(model, head, path)
            return cls(head, meta, session=OnnxBackend(path, threads).session)
        raise EchoAVCError(f"backend must be torch or onnx, not {backend!r}")

    def raw_logits(self, crops: np.ndarray, batch: int = 64) -> np.ndarray:
        from echoavc.preprocess.crop import normalise

        crops = np.asarray(crops)
        if crops.shape[1:] != (self.size, self.size):
            raise EchoAVCError(f"crops must be {self.size}x{self.size}, got {crops.shape[1:]}")
        if self.classifier is not None:
            return self.head.raw_logits(self.classifier.logits_and_features(crops, batch)[1])
        if self.session is None:
            return self.head.raw_logits(pooled_features(self.model, crops, self.mean, self.std, batch))
        out = [self.session.run(["cumulative_logits"], {"crops": normalise(crops[i:i + batch], self.mean, self.std)})[0]
               for i in range(0, len(crops), batch)]
        return np.concatenate(out).astype(float) if out else np.zeros((0, self.n_classes - 1))

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """(N, K) calibrated class probabilities (grade 0..K-1) per prepared crop."""
        return class_probabilities(self.raw_logits(crops) / self.head.temperature)

    def from_features(self, features: np.ndarray) -> np.ndarray:
        """(N, K) calibrated class probabilities from the classifier's pooled features (N, D)."""
        return self.head.probabilities(features)
