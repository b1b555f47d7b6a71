"""CVAT for images 1.1 XML::

    <annotations><version>1.1</version>
      <image id="0" name="frames/E-../...png" width="640" height="640">
        <box label="aortic_valve" occluded="0" xtl="101.50" ytl="..." xbr="..." ybr="..."/>
      </image>
    </annotations>

Corners in pixel-edge coordinates of the chosen space, two decimals (CVAT's own
precision); ``width``/``height`` must match the space (checked). ``name`` is the
ingest ``image_path`` (or its file name).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from echoavc.annotations.boxes import (
    VALVE_LABEL, BoxFile, FrameIndex, Problem, ValveBox, boxes_in_space, check_space,
)
from echoavc.files import atomic_write_bytes
from echoavc.annotations.coco import join_image
from echoavc.errors import EchoAVCError


def read_cvat(path: str | Path, frames: FrameIndex, space: str = "standard") -> BoxFile:
    check_space(space)
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise EchoAVCError("no such file", path) from None
    except ET.ParseError as exc:
        raise EchoAVCError(f"not XML ({exc})", path) from None
    if root.tag != "annotations":
        raise EchoAVCError("not a CVAT for images file (root is not <annotations>)", path)
    out = BoxFile()
    for im in root.iter("image"):
        where = f"{path.name} image {im.get('id')}"
        key = join_image(frames, where, (im.get("name"),), (im.get("width"), im.get("height")), space, out.problems)
        if key is None:
            continue
        for n, b in enumerate(im.iter("box")):
            try:
                x1, y1, x2, y2 = (float(b.get(a)) for a in ("xtl", "ytl", "xbr", "ybr"))
            except (TypeError, ValueError):
                out.problems.append(Problem("error", f"{where} box {n}", "corners are not 4 numbers"))
                continue
            if float(b.get("rotation", 0) or 0):
                out.problems.append(Problem("warning", f"{where} box {n}", "rotated box: rotation ignored"))
            out.boxes.append(ValveBox(key, x1, y1, x2, y2, space, origin=f"cvat:{where}#{n}"))
    return out


def write_cvat(boxes: list[ValveBox], path: str | Path, frames: FrameIndex, space: str = "standard",
               keys: list[str] | None = None) -> Path:
    per: dict[str, list[ValveBox]] = {k: [] for k in (keys or [])}
    for b in boxes_in_space(boxes, frames, space):
        per.setdefault(b.key, []).append(b)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(meta, "name").text = f"echoavc valve boxes ({space} space)"
    labels = ET.SubElement(ET.SubElement(meta, "labels"), "label")
    ET.SubElement(labels, "name").text = VALVE_LABEL
    for i, (key, bs) in enumerate(per.items()):
        f = frames[key]
        w, h = f.size(space)
        im = ET.SubElement(root, "image", id=str(i), name=f.image_path, width=str(w), height=str(h))
        for b in bs:
            ET.SubElement(im, "box", label=VALVE_LABEL, source="manual", occluded="0",
                          xtl=f"{b.x1:.2f}", ytl=f"{b.y1:.2f}", xbr=f"{b.x2:.2f}", ybr=f"{b.y2:.2f}", z_order="0")
    ET.indent(root)
    atomic_write_bytes(path, b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n")
    return Path(path)
