"""COCO JSON (object detection): ``images``, ``annotations``, ``categories``.

``bbox`` is ``[x, y, width, height]`` in pixels of the chosen space; each image's
``width``/``height`` must be that space's size (checked on reading, which catches a
wrong ``--space``). ``file_name`` is the ingest ``image_path``; images written by
echoavc also carry ``source_sha256`` and ``frame_index``, used first when present.
"""

from __future__ import annotations

import json
from pathlib import Path

from echoavc.annotations.boxes import (
    VALVE_LABEL, BoxFile, FrameIndex, Problem, ValveBox, boxes_in_space, check_space,
)
from echoavc.files import atomic_write_text
from echoavc.errors import EchoAVCError


def load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EchoAVCError("no such file", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EchoAVCError(f"not JSON ({exc})", path) from None


def size_problem(where: str, got: tuple, want: tuple, space: str) -> Problem | None:
    try:
        got = (int(round(float(got[0]))), int(round(float(got[1]))))
    except (TypeError, ValueError):
        return None
    if got != tuple(want):
        return Problem("error", where, f"image is {got[0]}x{got[1]} in the file but {want[0]}x{want[1]} in the "
                       f"{space} space: wrong --space?")
    return None


def join_image(frames: FrameIndex, where: str, refs: tuple, size: tuple, space: str,
               problems: list[Problem]) -> str | None:
    """The frame key an annotation file's image refers to, if it joins the manifest and its size fits
    ``space``; otherwise one problem is recorded and None returned."""
    try:
        key = frames.resolve(*refs)
    except KeyError as exc:
        problems.append(Problem("error", where, f"image not joined: {exc.args[0]}"))
        return None
    p = size_problem(where, size, frames[key].size(space), space)
    if p:
        problems.append(p)
        return None
    return key


def read_coco(path: str | Path, frames: FrameIndex, space: str = "standard") -> BoxFile:
    check_space(space)
    path = Path(path)
    doc = load_json(path)
    if not isinstance(doc, dict) or "images" not in doc or "annotations" not in doc:
        raise EchoAVCError("not a COCO file: needs 'images' and 'annotations'", path)
    cats = {c.get("id"): c.get("name", "") for c in doc.get("categories", [])}
    out, images = BoxFile(), {}
    for im in doc["images"]:
        where = f"{path.name} image {im.get('id')}"
        key = join_image(frames, where, (im.get("file_name"), im.get("source_sha256"), im.get("frame_index")),
                         (im.get("width"), im.get("height")), space, out.problems)
        if key is None:
            continue
        images[im.get("id")] = key
    for a in doc["annotations"]:
        if a.get("image_id") not in images:
            continue
        name = cats.get(a.get("category_id"), VALVE_LABEL)
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            out.problems.append(Problem("error", f"{path.name} annotation {a.get('id')}", "bbox is not 4 numbers"))
            continue
        out.boxes.append(ValveBox(images[a["image_id"]], x, y, x + w, y + h, space, label=VALVE_LABEL,
                                  origin=f"coco:{path.name}#{a.get('id')}:{name}"))
    return out


def write_coco(boxes: list[ValveBox], path: str | Path, frames: FrameIndex, space: str = "standard",
               keys: list[str] | None = None) -> Path:
    boxes = boxes_in_space(boxes, frames, space)
    order = list(dict.fromkeys(list(keys or []) + [b.key for b in boxes]))
    ids = {k: i + 1 for i, k in enumerate(order)}
    images = []
    for k in order:
        f = frames[k]
        w, h = f.size(space)
        images.append({"id": ids[k], "file_name": f.image_path, "width": w, "height": h,
                       "source_sha256": f.source_sha256, "frame_index": f.frame_index})
    anns = [{"id": i + 1, "image_id": ids[b.key], "category_id": 1,
             "bbox": [round(b.x1, 4), round(b.y1, 4), round(b.width, 4), round(b.height, 4)],
             "area": round(b.width * b.height, 4), "iscrowd": 0} for i, b in enumerate(boxes)]
    doc = {"info": {"description": f"echoavc valve boxes, {space} space", "coordinate_space": space},
           "images": images, "annotations": anns,
           "categories": [{"id": 1, "name": VALVE_LABEL, "supercategory": "valve"}]}
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return Path(path)
