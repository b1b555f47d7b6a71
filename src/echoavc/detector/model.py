"""Which network, from which weights, and what to call it.

Models are built from Ultralytics' yaml (``YOLO("yolov5s.yaml")`` builds with no download). Ultralytics'
YOLOv5 yaml is its maintained anchor-free YOLOv5u, not the paper's anchor-based YOLOv5s, so every output names
the model as built: ``"yolov5su, from scratch"``, ``"yolov5nu, from COCO weights yolov5nu.pt"``,
``"yolo11n, from runs/a/weights/best.pt"``.

Weights, in order (:func:`resolve_weights`); nothing here ever downloads (``echoavc weights fetch yolov5n``
does, when asked):

1. ``weights=PATH``: a local Ultralytics checkpoint (COCO-pretrained or an earlier run); its architecture must
   be the one asked for, else it is refused (a yolo11n checkpoint cannot start a yolov5n).
2. ``pretrained="none"`` (the default): from scratch; the ``cpu`` preset is chosen to learn anyway.
3. ``pretrained=PATH`` or the name of cached weights (``echoavc weights list``): that checkpoint, checked as in 1.
4. ``pretrained="auto"``: the COCO weights in the echoavc cache (``<cache>/weights/yolov5nu.pt``) when a file is
   there, else from scratch with a warning saying how to get them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from echoavc import runtime
from echoavc.errors import EchoAVCError

#: Architectures offered (others of these families with scales m/l/x also build).
MODELS = ("yolov5n", "yolov5s", "yolo11n", "yolo11s")
_ARCH = re.compile(r"^(yolov5|yolov8|yolo11)([nsmlx])(u?)$")


@dataclass(frozen=True)
class WeightsChoice:
    """Where the first weights come from: ``path`` (None: from scratch), a phrase for names, a warning."""

    path: Path | None
    origin: str
    warning: str | None = None

    @property
    def from_scratch(self) -> bool:
        return self.path is None


def parse_model(name: str) -> tuple[str, str]:
    """``(family, scale)`` of a model name such as ``yolov5s``, ``yolov5su``, ``yolo11n.yaml``."""
    stem = Path(str(name)).name
    for suffix in (".yaml", ".yml", ".pt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _ARCH.match(stem.lower())
    if not m:
        raise EchoAVCError(f"unknown model {name!r}: use one of {', '.join(MODELS)} (or another scale n/s/m/l/x "
                           "of yolov5, yolov8, yolo11)")
    return m.group(1), m.group(2)


def yaml_name(model: str) -> str:
    """The Ultralytics yaml that builds ``model`` (``yolov5s`` -> ``yolov5s.yaml``)."""
    family, scale = parse_model(model)
    return f"{family}{scale}.yaml"


def built_name(model: str) -> str:
    """The model's name as built: Ultralytics' YOLOv5 yaml builds the anchor-free YOLOv5u (``yolov5su``)."""
    family, scale = parse_model(model)
    return f"{family}{scale}u" if family == "yolov5" else f"{family}{scale}"


def pretrained_file(model: str) -> str:
    """File name of Ultralytics' COCO-pretrained weights for ``model`` (``yolov5nu.pt``, ``yolo11n.pt``)."""
    return f"{built_name(model)}.pt"


def describe(model: str, choice: WeightsChoice) -> str:
    """``"yolov5su, from scratch"`` and the like: the name used in every output."""
    return f"{built_name(model)}, {choice.origin}"


def weights_cache() -> Path:
    return runtime.cache_dir() / "weights"


def checkpoint_info(path: str | Path) -> dict:
    """Architecture and provenance of an Ultralytics checkpoint (``.pt``): ``{"model", "nc", "names",
    "imgsz", "echoavc"}``; a file that is not one is a one-line error."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise EchoAVCError("no such weights file", p)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 (pickle, zip and torch errors alike)
        raise EchoAVCError(f"not a readable PyTorch checkpoint ({type(exc).__name__})", p) from None
    net = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else None
    yaml = getattr(net, "yaml", None)
    if not isinstance(yaml, dict):
        raise EchoAVCError("not an Ultralytics detection checkpoint (no model yaml inside)", p)
    stem = Path(str(yaml.get("yaml_file", ""))).stem
    scale = yaml.get("scale") or ""
    family = re.sub(r"[nsmlx]?u?$", "", stem) if stem else ""
    arch = f"{family}{scale}" if family and scale else stem
    train_args = ckpt.get("train_args") or {}
    names = getattr(net, "names", None) or {}
    return {"model": arch, "nc": int(yaml.get("nc", len(names) or 0)), "names": dict(names),
            "imgsz": train_args.get("imgsz"), "echoavc": ckpt.get("echoavc") or {}}


def check_compatible(model: str, path: str | Path) -> dict:
    """Refuse a checkpoint whose architecture is not ``model``; returns :func:`checkpoint_info`."""
    info = checkpoint_info(path)
    want = parse_model(model)
    try:
        have = parse_model(info["model"])
    except EchoAVCError:
        have = None
    if have != want:
        raise EchoAVCError(f"the weights are a {info['model'] or 'different'} model, not {built_name(model)}: "
                           f"use --model {info['model']} or weights of that model", path)
    return info


def resolve_weights(model: str, weights: str | Path | None = None, pretrained: str = "none") -> WeightsChoice:
    """Where the first weights come from (module docstring). Never touches the network."""
    from echoavc.weights import resolve_file

    parse_model(model)
    if weights is not None:
        p = Path(weights)
        check_compatible(model, p)
        return WeightsChoice(p, f"from {p}")
    spec = str(pretrained or "none")
    if spec.lower() in ("none", "scratch", "false", ""):
        return WeightsChoice(None, "from scratch")
    name = pretrained_file(model)
    if spec.lower() == "auto":
        cached = weights_cache() / name
        if cached.is_file():
            check_compatible(model, cached)
            return WeightsChoice(cached, f"from COCO weights {name}")
        return WeightsChoice(None, "from scratch",
                             f"no pretrained weights in {weights_cache()}; training {built_name(model)} from scratch "
                             f"(`echoavc weights fetch {model}` downloads {name} there, or pass --weights PATH)")
    p = resolve_file(spec)
    check_compatible(model, p)
    return WeightsChoice(p, f"from {p.name}" if p.parent == weights_cache() else f"from {p}")
