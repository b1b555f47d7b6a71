"""Grad-CAM (Selvaraju et al. 2017) for a classified crop, with torch autograd (no extra package).

For the logit y and the explained feature map A (C x h x w; by default the backbone's last map, the one
the paper's pooling acts on): channel weights a_c = mean over positions of dy/dA_c, map =
ReLU(sum_c a_c A_c), upsampled to the crop and scaled to [0, 1]. Any model with ``features(x)`` and
``head(feats)`` works (``AVCNet`` has both); ``layer`` explains another module's output through a hook.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

__all__ = ["grad_cam", "overlay", "save_overlay", "explain"]


def grad_cam(model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None) -> tuple[np.ndarray, float]:
    """(heat map (H, W) in [0, 1], logit) for one input ``x`` (1, C, H, W)."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError("grad_cam explains one input: x must be (1, C, H, W)")
    was = model.training
    model.eval()
    x = x.detach().clone().requires_grad_(True)  # also makes an identity "backbone" explainable
    try:
        with torch.enable_grad():
            if layer is None:
                feats = model.features(x)
                feats.retain_grad()
                logit = model.head(feats)
            else:
                store: dict = {}

                def hook(_m, _inp, out):
                    out.retain_grad()
                    store["a"] = out

                h = layer.register_forward_hook(hook)
                try:
                    logit = model(x)
                finally:
                    h.remove()
                feats = store["a"]
            logit = logit.reshape(-1)[0]
            model.zero_grad(set_to_none=True)
            logit.backward()
        a = feats.detach()[0]
        g = feats.grad.detach()[0]
        weights = g.mean(dim=(1, 2))
        cam = torch.relu((weights[:, None, None] * a).sum(0)).numpy().astype(np.float32)
    finally:
        model.train(was)
        model.zero_grad(set_to_none=True)
    H, W = x.shape[-2:]
    cam = cv2.resize(cam, (W, H), interpolation=cv2.INTER_LINEAR)
    top = float(cam.max())
    cam = cam / top if top > 0 else np.zeros_like(cam)
    return cam, float(logit.detach())


def overlay(crop: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """BGR image: the grey crop with the heat map (JET colour map) blended over it."""
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    base = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    heat = cv2.applyColorMap(np.clip(cam * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    if heat.shape[:2] != base.shape[:2]:
        heat = cv2.resize(heat, base.shape[1::-1])
    return cv2.addWeighted(heat, alpha, base, 1 - alpha, 0)


def save_overlay(path: str | Path, crop: np.ndarray, cam: np.ndarray, text: str | None = None) -> Path:
    """Write the overlay (PNG), crop on the left and overlay on the right, with an optional caption."""
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    img = np.hstack([cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), overlay(grey, cam)])
    if text:
        bar = np.zeros((18, img.shape[1], 3), np.uint8)
        cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        img = np.vstack([img, bar])
    from echoavc.files import atomic_write_bytes

    path = Path(path)
    ok, buf = cv2.imencode(".png", img)
    atomic_write_bytes(path, buf.tobytes())
    return path


def explain(classifier, crops: np.ndarray, out_dir: str | Path, names: list[str] | None = None) -> list[dict]:
    """Grad-CAM overlays for prepared crops with a loaded ``Classifier`` (torch backend): one PNG per crop,
    captioned with the calibrated probability and the call. Returns one record per crop."""
    from echoavc.preprocess.crop import normalise

    if classifier.model is None:
        raise ValueError("Grad-CAM needs the torch backend")
    out_dir = Path(out_dir)
    crops = np.asarray(crops)
    if crops.ndim == 2:
        crops = crops[None]
    rows = []
    for i, crop in enumerate(crops):
        x = torch.from_numpy(normalise(crop, classifier.mean, classifier.std))
        cam, z = grad_cam(classifier.model, x)
        p = float(classifier.calibration(np.array([z]))[0])
        call = "calcified" if p >= classifier.threshold else "not calcified"
        name = (names[i] if names else f"crop{i:04d}")
        path = save_overlay(out_dir / f"{name}_gradcam.png", crop, cam, f"P={p:.2f} {call}")
        rows.append({"name": name, "probability": p, "call": call, "logit": z, "overlay": str(path)})
    return rows
