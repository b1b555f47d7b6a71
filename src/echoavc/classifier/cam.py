"""Grad-CAM of the classifier's ONNX graph, without PyTorch.

The classifier (``AVCNet``) ends in pooling and two dense layers: logit = w2 . ReLU(W1 p + b1) + b2, with p the
pooled (avg, max) or flattened (none) last feature map A. So the logit's gradient on A is known in closed form:
g = W1^T (w2 * [W1 p + b1 > 0]) on p, spread over the positions of A as the pooling spreads it (avg: g_c / hw at
every position; max: g_c at the channel's maximum; none: g reshaped to C x h x w). Grad-CAM's channel weights, the
mean gradient over positions, are then g_c / hw for avg and max pooling and the mean of g's map for none, and the
heat map is ReLU(sum_c a_c A_c), upsampled to the crop and scaled to [0, 1], as :func:`echoavc.classifier.gradcam.
grad_cam` computes it with autograd (tests/classifier/test_cam.py checks they agree). The feature map comes from
the same ONNX graph, made to output it; the dense weights from the model's safetensors. Predict with the ONNX
backend thus draws its heat maps without importing torch (seconds of a small batch's wall time).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from echoavc.classifier.predict import FEATURES_OUTPUT, MODEL_FILE
from echoavc.errors import EchoAVCError

__all__ = ["OnnxGradCam", "feature_map_outputs"]

#: graph nodes that pool the last feature map into the ``features`` output
_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool", "ReduceMean", "ReduceMax")


def feature_map_outputs(graph) -> list[str]:
    """Each network's last feature map in a classifier graph: one name, or one per member of an ensemble (whose
    ``features`` output concatenates the members' pooled features; ``classifier.ensemble``)."""
    made_by = {o: n for n in graph.node for o in n.output}
    node = made_by.get(FEATURES_OUTPUT)
    flats = [node] if node is not None and node.op_type == "Flatten" else \
        [made_by.get(i) for i in node.input] if node is not None and node.op_type == "Concat" else []
    if not flats or any(f is None or f.op_type != "Flatten" for f in flats):
        raise EchoAVCError("this classifier graph has no pooled features output (exported by an older echoavc)")
    names = []
    for f in flats:
        below = made_by.get(f.input[0])
        names.append(below.input[0] if below is not None and below.op_type in _POOLS else f.input[0])
    return names


class OnnxGradCam:
    """Grad-CAM for one prepared, normalised crop (1, 3, S, S) of a classifier folder's ONNX graph."""

    def __init__(self, folder: str | Path, onnx_file: str, pooling: str, threads: int = 0):
        import onnx
        import onnxruntime as ort
        from safetensors.numpy import load_file

        folder = Path(folder)
        graph = onnx.load(str(folder / onnx_file))
        self.map_names = feature_map_outputs(graph.graph)
        for name in self.map_names:
            graph.graph.output.append(onnx.ValueInfoProto(name=name))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        w = load_file(str(folder / MODEL_FILE))
        # one network's dense layers, or each member's (``members.K.`` keys) in the order of its feature map
        prefixes = [""] if len(self.map_names) == 1 else [f"members.{k}." for k in range(len(self.map_names))]
        self.dense = [(w[f"{p}dense.weight"].astype(np.float64), w[f"{p}dense.bias"].astype(np.float64),
                       w[f"{p}out.weight"].astype(np.float64).reshape(-1)) for p in prefixes]
        self.pooling = pooling

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """(heat map (S, S) in [0, 1], logit) for one normalised crop ``x`` (1, 3, S, S) float32."""
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError("Grad-CAM explains one input: x must be (1, C, H, W)")
        logit, pooled, *fmaps = self.session.run(["logits", FEATURES_OUTPUT, *self.map_names], {"crops": x})
        k = len(fmaps)
        cam = 0.0
        # an ensemble's logit is the mean of its members': each member's gradient counts 1/K, and its channel
        # weights apply to its own map (the members' maps side by side are the ensemble's feature map)
        for (w1, b1, w2), fmap, p in zip(self.dense, fmaps, np.split(pooled[0].astype(np.float64), k)):
            a = fmap[0].astype(np.float64)  # C x h x w
            g = w1.T @ (w2 * (w1 @ p + b1 > 0)) / k  # d logit / d p
            weights = g.reshape(a.shape).mean(axis=(1, 2)) if self.pooling == "none" else g / (a.shape[1] * a.shape[2])
            cam = cam + (weights[:, None, None] * a).sum(0)
        cam = np.maximum(cam, 0.0).astype(np.float32)
        H, W = x.shape[-2:]
        cam = cv2.resize(cam, (W, H), interpolation=cv2.INTER_LINEAR)
        top = float(cam.max())
        cam = cam / top if top > 0 else np.zeros_like(cam)
        return cam, float(np.asarray(logit).reshape(-1)[0])
