"""Offline-safe process defaults, set once when ``echoavc`` is imported.

Every variable is set with ``setdefault`` so a user's own environment wins.
Why each one (field notes, section 4):
- Ultralytics checks connectivity, pip-installs missing packages at run time,
  looks up a font online and writes settings under the home folder;
- albumentations checks for updates at import;
- the Hugging Face hub retries for about 46 s when it cannot be reached (set offline with ECHOAVC_OFFLINE;
  echoavc itself never asks the hub for anything except in ``echoavc weights fetch``);
- Ultralytics sets torch to one thread on small machines on every call.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

_configured = False


def cache_dir() -> Path:
    """Folder for caches and third-party settings (``ECHOAVC_CACHE`` overrides)."""
    root = os.environ.get("ECHOAVC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "echoavc"
    )
    return Path(root)


def offline_requested() -> bool:
    return os.environ.get("ECHOAVC_OFFLINE", "").lower() in {"1", "true", "yes"}


def configure(offline: bool | None = None) -> None:
    """Set the offline-safe environment. Cheap; safe to call more than once."""
    global _configured
    cache = cache_dir()
    env = os.environ
    env.setdefault("YOLO_OFFLINE", "1")
    env.setdefault("YOLO_AUTOINSTALL", "False")
    env.setdefault("YOLO_CONFIG_DIR", str(cache / "ultralytics"))
    env.setdefault("MPLCONFIGDIR", str(cache / "matplotlib"))
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if offline or (offline is None and offline_requested()):
        env["HF_HUB_OFFLINE"] = "1"
    if not _configured:
        _install_font(Path(env["YOLO_CONFIG_DIR"]))
    _configured = True


def _install_font(yolo_config_dir: Path) -> None:
    """Put a TTF where Ultralytics looks for Arial.ttf, so it never downloads one."""
    target = yolo_config_dir / "Ultralytics" / "Arial.ttf"
    if target.exists():
        return
    spec = importlib.util.find_spec("matplotlib")
    candidates = []
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")
    candidates.append(Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
    for font in candidates:
        if font.is_file():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(font, target)
            except OSError:
                pass  # a read-only home only costs Ultralytics a failed lookup
            return


def all_cores() -> int:
    """Restore torch to every core (Ultralytics drops it to one); returns the count. Torch only where it is
    loaded already: the ONNX path never imports it (a second or more of a small batch's start)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:
        pass
    return n


def machine() -> dict:
    """The machine a run was made on (for benchmark and training records): CPU model, usable cores, platform,
    Python, torch and its thread count, and the GPU when there is one."""
    import platform

    import torch

    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    info = {"cpu": cpu or platform.processor() or platform.machine(),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict:
    """Versions of the packages a trained model depends on (recorded in model bundles)."""
    from importlib.metadata import PackageNotFoundError, version

    import echoavc

    out = {"echoavc": echoavc.__version__}
    for pkg in ("torch", "torchvision", "timm", "ultralytics", "onnxruntime", "numpy", "opencv-python-headless",
                "pydicom"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
