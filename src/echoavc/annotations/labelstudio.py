"""Label Studio JSON export (a list of tasks) with ``rectanglelabels`` results.

Each result's ``value`` holds ``x``, ``y``, ``width``, ``height`` in percent of
``original_width`` / ``original_height`` (Label Studio's names; here they are the
size of the chosen space, checked on reading). ``data.image`` is the ingest
``image_path`` (Label Studio's upload prefixes are tolerated: the file name is
matched); tasks written by echoavc also carry ``source_sha256`` and ``frame_index``.
A rotated rectangle is read as the box that encloses it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from echoavc.annotations.boxes import (
    VALVE_LABEL, BoxFile, FrameIndex, Problem, ValveBox, boxes_in_space, check_space,
)
from echoavc.files import atomic_write_text
from echoavc.annotations.coco import load_json, size_problem
from echoavc.errors import EchoAVCError


def read_labelstudio(path: str | Path, frames: FrameIndex, space: str = "standard") -> BoxFile:
    check_space(space)
    path = Path(path)
    doc = load_json(path)
    tasks = doc if isinstance(doc, list) else [doc]
    out = BoxFile()
    for t, task in enumerate(tasks):
        if not isinstance(task, dict) or "data" not in task:
            raise EchoAVCError(f"task {t} has no 'data': not a Label Studio export", path)
        data = task["data"]
        where = f"{path.name} task {task.get('id', t)}"
        ref = next((v for k, v in data.items() if k in ("image", "img", "url")), None)
        try:
            key = frames.resolve(ref, data.get("source_sha256"), data.get("frame_index"))
        except KeyError as exc:
            out.problems.append(Problem("error", where, f"task not joined: {exc.args[0]}"))
            continue
        want = frames[key].size(space)
        for ann in task.get("annotations", []) or task.get("completions", []):
            if ann.get("was_cancelled"):
                continue
            for r, res in enumerate(ann.get("result", [])):
                if res.get("type") not in ("rectanglelabels", "rectangle"):
                    continue
                v = res.get("value", {})
                W, H = res.get("original_width", want[0]), res.get("original_height", want[1])
                p = size_problem(where, (W, H), want, space)
                if p:
                    out.problems.append(p)
                    continue
                try:
                    x, y, w, h = (float(v[n]) for n in ("x", "y", "width", "height"))
                except (KeyError, TypeError, ValueError):
                    out.problems.append(Problem("error", f"{where} result {r}", "rectangle is not 4 numbers"))
                    continue
                x, y, w, h = x * want[0] / 100, y * want[1] / 100, w * want[0] / 100, h * want[1] / 100
                rot = math.radians(float(v.get("rotation", 0) or 0))
                if rot:
                    # Label Studio rotates about the top-left corner
                    pts = [(0, 0), (w, 0), (0, h), (w, h)]
                    xs = [x + px * math.cos(rot) - py * math.sin(rot) for px, py in pts]
                    ys = [y + px * math.sin(rot) + py * math.cos(rot) for px, py in pts]
                    box = (min(xs), min(ys), max(xs), max(ys))
                    out.problems.append(Problem("warning", f"{where} result {r}", "rotated rectangle: its enclosing box is used"))
                else:
                    box = (x, y, x + w, y + h)
                out.boxes.append(ValveBox(key, *box, space, origin=f"labelstudio:{where}#{r}"))
    return out


def write_labelstudio(boxes: list[ValveBox], path: str | Path, frames: FrameIndex, space: str = "standard",
                      keys: list[str] | None = None) -> Path:
    boxes = boxes_in_space(boxes, frames, space)
    per: dict[str, list[ValveBox]] = {k: [] for k in (keys or [])}
    for b in boxes:
        per.setdefault(b.key, []).append(b)
    tasks = []
    for i, (key, bs) in enumerate(per.items()):
        f = frames[key]
        W, H = f.size(space)
        results = [{
            "id": f"v{i}_{j}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": W, "original_height": H, "image_rotation": 0,
            "value": {"x": b.x1 / W * 100, "y": b.y1 / H * 100, "width": b.width / W * 100,
                      "height": b.height / H * 100, "rotation": 0, "rectanglelabels": [VALVE_LABEL]},
        } for j, b in enumerate(bs)]
        tasks.append({"id": i + 1, "data": {"image": f.image_path, "source_sha256": f.source_sha256,
                                            "frame_index": f.frame_index, "coordinate_space": space},
                      "annotations": [{"id": i + 1, "result": results}]})
    atomic_write_text(path, json.dumps(tasks, indent=1) + "\n")
    return Path(path)
