"""YOLO txt: one ``<image stem>.txt`` per image, one line per box::

    <class> <x_centre> <y_centre> <width> <height>

normalised by the image's width and height in the chosen space (``standard``:
``std_size``; ``original``: the DICOM frame). Class 0 is the aortic valve
(``classes.txt`` names it). A frame without a valve gets an empty file (a
background image). The stem is the ingest PNG's stem, which names one frame.
"""

from __future__ import annotations

from pathlib import Path

from echoavc.annotations.boxes import (
    label_files, VALVE_LABEL, BoxFile, FrameIndex, Problem, ValveBox, boxes_in_space, check_space,
)
from echoavc.files import atomic_write_text


def yolo_line(box: ValveBox, width: int, height: int, cls: int = 0) -> str:
    cx, cy = (box.x1 + box.x2) / 2 / width, (box.y1 + box.y2) / 2 / height
    return f"{cls} {cx:.8f} {cy:.8f} {box.width / width:.8f} {box.height / height:.8f}"


def parse_yolo_line(line: str, width: int, height: int) -> tuple[int, float, float, float, float]:
    parts = line.split()
    if len(parts) != 5:
        raise ValueError(f"expected 5 numbers, found {len(parts)}")
    cls = int(float(parts[0]))
    cx, cy, w, h = (float(p) for p in parts[1:])
    return cls, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height


def read_yolo(path: str | Path, frames: FrameIndex, space: str = "standard") -> BoxFile:
    """Read a folder of YOLO label files (or one file)."""
    check_space(space)
    files = label_files(path, ".txt", skip=("classes.txt",))
    out = BoxFile()
    for f in files:
        try:
            key = frames.resolve(f.stem)
        except KeyError as exc:
            out.problems.append(Problem("error", str(f), f"label file not joined: {exc.args[0]}"))
            continue
        w, h = frames[key].size(space)
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                cls, x1, y1, x2, y2 = parse_yolo_line(line, w, h)
            except ValueError as exc:
                out.problems.append(Problem("error", f"{f} line {n}", f"not a YOLO box ({exc})"))
                continue
            if cls != 0:
                out.problems.append(Problem("warning", f"{f} line {n}", f"class {cls} is not the valve (0): skipped"))
                continue
            out.boxes.append(ValveBox(key, x1, y1, x2, y2, space, origin=f"yolo:{f.name}#{n}"))
    return out


def write_yolo(boxes: list[ValveBox], path: str | Path, frames: FrameIndex, space: str = "standard",
               keys: list[str] | None = None) -> Path:
    """Write one label file per frame with a box, and an empty one per frame in ``keys`` without."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {k: [] for k in (keys or [])}
    for b in boxes_in_space(boxes, frames, space):
        lines.setdefault(b.key, []).append(yolo_line(b, *frames[b.key].size(space)))
    for key, ls in lines.items():
        stem = Path(frames[key].image_path).stem
        atomic_write_text(out / f"{stem}.txt", "".join(line + "\n" for line in ls))
    atomic_write_text(out / "classes.txt", VALVE_LABEL + "\n")
    return out
