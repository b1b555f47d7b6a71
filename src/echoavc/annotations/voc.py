"""Pascal VOC XML: one ``<image stem>.xml`` per image::

    <annotation><filename>..png</filename><path>frames/E-../...png</path>
      <size><width>640</width><height>640</height><depth>1</depth></size>
      <object><name>aortic_valve</name><bndbox><xmin>101</xmin><ymin>..</ymin><xmax>..</xmax><ymax>..</ymax></bndbox></object>
    </annotation>

VOC coordinates are 1-based and inclusive: pixel-edge box (x1, y1, x2, y2) is written
as ``xmin = x1 + 1, xmax = x2`` (integers when ``integer=True``, the classic form,
else two decimals); reading accepts both. ``<size>`` must match the space (checked).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from echoavc.annotations.boxes import (
    label_files, VALVE_LABEL, BoxFile, FrameIndex, Problem, ValveBox, boxes_in_space, check_space,
)
from echoavc.files import atomic_write_bytes
from echoavc.annotations.coco import size_problem
from echoavc.errors import EchoAVCError


def read_voc(path: str | Path, frames: FrameIndex, space: str = "standard") -> BoxFile:
    """Read a folder of VOC XML files (or one file)."""
    check_space(space)
    files = label_files(path, ".xml")
    out = BoxFile()
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError as exc:
            raise EchoAVCError(f"not XML ({exc})", f) from None
        if root.tag != "annotation":
            raise EchoAVCError("not a Pascal VOC file (root is not <annotation>)", f)
        ref = root.findtext("path") or root.findtext("filename") or f.stem
        try:
            key = frames.resolve(ref)
        except KeyError:
            try:
                key = frames.resolve(root.findtext("filename") or f.stem)
            except KeyError as exc:
                out.problems.append(Problem("error", str(f), f"annotation not joined: {exc.args[0]}"))
                continue
        size = root.find("size")
        if size is not None:
            p = size_problem(str(f), (size.findtext("width"), size.findtext("height")), frames[key].size(space), space)
            if p:
                out.problems.append(p)
                continue
        for n, obj in enumerate(root.iter("object")):
            bb = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                out.problems.append(Problem("error", f"{f} object {n}", "bndbox is not 4 numbers"))
                continue
            out.boxes.append(ValveBox(key, xmin - 1, ymin - 1, xmax, ymax, space, origin=f"voc:{f.name}#{n}"))
    return out


def write_voc(boxes: list[ValveBox], path: str | Path, frames: FrameIndex, space: str = "standard",
              keys: list[str] | None = None, integer: bool = True) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    per: dict[str, list[ValveBox]] = {k: [] for k in (keys or [])}
    for b in boxes_in_space(boxes, frames, space):
        per.setdefault(b.key, []).append(b)

    def num(v: float) -> str:
        return str(int(round(v))) if integer else f"{v:.2f}"

    for key, bs in per.items():
        f = frames[key]
        w, h = f.size(space)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = str(Path(f.image_path).parent.as_posix())
        ET.SubElement(root, "filename").text = Path(f.image_path).name
        ET.SubElement(root, "path").text = f.image_path
        src = ET.SubElement(root, "source")
        ET.SubElement(src, "database").text = f"echoavc ({space} space)"
        sz = ET.SubElement(root, "size")
        for t, v in (("width", w), ("height", h), ("depth", 1)):
            ET.SubElement(sz, t).text = str(v)
        ET.SubElement(root, "segmented").text = "0"
        for b in bs:
            o = ET.SubElement(root, "object")
            ET.SubElement(o, "name").text = VALVE_LABEL
            ET.SubElement(o, "pose").text = "Unspecified"
            ET.SubElement(o, "truncated").text = "0"
            ET.SubElement(o, "difficult").text = "0"
            bb = ET.SubElement(o, "bndbox")
            for t, v in (("xmin", b.x1 + 1), ("ymin", b.y1 + 1), ("xmax", b.x2), ("ymax", b.y2)):
                ET.SubElement(bb, t).text = num(v)
        ET.indent(root)
        atomic_write_bytes(out / f"{Path(f.image_path).stem}.xml", ET.tostring(root, encoding="utf-8") + b"\n")
    return out
