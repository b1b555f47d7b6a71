"""``echoavc doctor``: what a user needs to know about this installation."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from echoavc import __version__, runtime

PACKAGES = [
    "numpy", "opencv-python-headless", "opencv-python", "pydicom", "pylibjpeg", "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg", "pylibjpeg-rle", "dicom-anonymizer", "pandas", "torch", "torchvision", "ultralytics",
    "timm", "albumentations", "scikit-learn", "onnxruntime", "onnx", "typer", "rich",
]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def decoders() -> dict[str, str]:
    """Transfer syntax name -> the plugins that decode it here ('none' when missing)."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import (
        RLELossless, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
        ImplicitVRLittleEndian, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit,
        JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    )

    out = {}
    for uid in (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
                JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless,
                JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless):
        try:
            dec = get_decoder(uid)
            out[uid.name] = ", ".join(dec.available_plugins) or ("native" if not uid.is_compressed else "none")
        except NotImplementedError:
            out[uid.name] = "none"
    return out


def accelerator() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple MPS"
    return "none (CPU only)"


def report() -> dict:
    cores = runtime.all_cores()
    import torch

    return {
        "echoavc": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "dicom_decoders": decoders(),
        "accelerator": accelerator(),
        "threads": {"cores": cores, "torch": torch.get_num_threads()},
        "offline": {k: os.environ.get(k, "") for k in
                    ("ECHOAVC_OFFLINE", "HF_HUB_OFFLINE", "YOLO_OFFLINE", "YOLO_AUTOINSTALL",
                     "NO_ALBUMENTATIONS_UPDATE")},
        "cache_dir": str(runtime.cache_dir()),
    }
