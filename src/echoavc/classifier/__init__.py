"""The calcification classifier (paper: section 3, Fig. 9, Tables 2-4).

- ``model``: timm backbone + pooling (none/max/avg) + Dense(120) + ReLU + one logit; ``build(...)``.
- ``data``: prepared crops (margin, size, the paper's noise reduction), samples from a table and split.
- ``train``: plain PyTorch training, early stopping, safetensors checkpoint + JSON settings.
- ``calibrate``: temperature / isotonic calibration and the threshold, on validation or out-of-fold data.
- ``predict``: ``Classifier`` (PyTorch or ONNX Runtime behind one interface).
- ``baseline``: the paper's binarisation heuristic and a fairer fitted variant (numpy only).
- ``gradcam``: Grad-CAM overlays.
- ``evaluate``: metrics with intervals on a part of a dataset.
"""

from echoavc.lazy import lazy_exports

# Lazy: ``echoavc.classifier.cli`` is imported by every CLI start-up, which must not pay for torch and timm.
_EXPORTS = {
    "AVCNet": "model", "build": "model", "prepare_crop": "data", "train_classifier": "train",
    "Classifier": "predict", "load_model": "predict", "export_onnx": "predict", "Calibration": "calibrate",
    "fit_calibration": "calibrate", "pick_threshold": "calibrate", "paper_call": "baseline",
    "FairBaseline": "baseline", "fit_fair_baseline": "baseline",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
