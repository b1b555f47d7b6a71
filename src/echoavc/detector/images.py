"""The valve's top box in a set of image files: what ``echoavc detector predict`` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from echoavc.errors import EchoAVCError

#: The columns of the CSV ``echoavc detector predict`` writes, one row per image.
TOP_BOX_COLUMNS = ("image", "found", "x1", "y1", "x2", "y2", "score")


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files given as files or folders (recursive, sorted per folder); an error for a missing path or
    when none is found."""
    from echoavc.detector.train import IMAGE_SUFFIXES

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise EchoAVCError("no such image or folder", p)
    if not files:
        raise EchoAVCError("no images found", paths[0] if paths else None)
    return files


def top_boxes(detector, files: Sequence[Path], conf: float | None = None) -> list[dict]:
    """One row per file (``TOP_BOX_COLUMNS``): the top box in the image's own pixels and its score, blank
    when none scores ``conf`` (default: the detector's); images go through in the detector's batches."""
    from echoavc.detector.predict import read_image

    rows = []
    bs = detector.settings.predict_batch
    for i in range(0, len(files), bs):
        chunk = files[i:i + bs]
        top = detector.top([read_image(f) for f in chunk], conf)
        for f, b, sc, ok in zip(chunk, top.boxes, top.scores, top.found):
            rows.append({"image": str(f), "found": int(ok),
                         **{k: (round(float(v), 2) if ok else "") for k, v in zip(("x1", "y1", "x2", "y2"), b)},
                         "score": round(float(sc), 4) if ok else ""})
    return rows
