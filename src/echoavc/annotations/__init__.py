"""Valve boxes in and out: one module per format, all to and from :class:`ValveBox`.

``FORMATS`` is the registry the CLI picks from with ``--format``. Every reader takes
``(path, frames, space)`` and returns a :class:`BoxFile` (boxes + problems); every
writer takes ``(boxes, path, frames, space)``. ``read_boxes``/``write_boxes`` dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from echoavc.annotations.boxes import (
    SPACES, VALVE_LABEL, BoxFile, FrameIndex, Problem, ValveBox, frame_key, read_manifest,
)
from echoavc.annotations.coco import read_coco, write_coco
from echoavc.annotations.cvat import read_cvat, write_cvat
from echoavc.annotations.labelstudio import read_labelstudio, write_labelstudio
from echoavc.annotations.maxqda import read_maxqda, write_maxqda
from echoavc.annotations.voc import read_voc, write_voc
from echoavc.annotations.yolo import read_yolo, write_yolo
from echoavc.errors import EchoAVCError


@dataclass(frozen=True)
class Format:
    name: str
    read: Callable[..., BoxFile]
    write: Callable[..., Path]
    #: "file" (one file) or "folder" (one file per image)
    layout: str
    description: str


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("maxqda", read_maxqda, write_maxqda, "file", "MAXQDA-style CSV of rectangles (the paper's export)"),
    Format("yolo", read_yolo, write_yolo, "folder", "YOLO txt, one file per image, normalised centre/size"),
    Format("coco", read_coco, write_coco, "file", "COCO detection JSON"),
    Format("voc", read_voc, write_voc, "folder", "Pascal VOC XML, one file per image"),
    Format("labelstudio", read_labelstudio, write_labelstudio, "file", "Label Studio JSON export"),
    Format("cvat", read_cvat, write_cvat, "file", "CVAT for images 1.1 XML"),
)}
#: Formats ``echoavc dataset export`` writes (every format can be written from Python).
EXPORT_FORMATS = ("yolo", "coco")


def get_format(name: str) -> Format:
    try:
        return FORMATS[name.lower()]
    except KeyError:
        raise EchoAVCError(f"unknown box format {name!r}; expected one of {', '.join(FORMATS)}") from None


def read_boxes(path: str | Path, fmt: str, frames: FrameIndex, space: str = "original", **options) -> BoxFile:
    return get_format(fmt).read(path, frames, space, **options)


def write_boxes(boxes: list[ValveBox], path: str | Path, fmt: str, frames: FrameIndex, space: str = "standard",
                **options) -> Path:
    return get_format(fmt).write(boxes, path, frames, space, **options)


__all__ = ["FORMATS", "EXPORT_FORMATS", "Format", "get_format", "read_boxes", "write_boxes", "ValveBox",
           "FrameIndex", "BoxFile", "Problem", "SPACES", "VALVE_LABEL", "frame_key", "read_manifest"]
