"""find_cone on real echo files from pydicom / pydicom-data against cone outlines drawn by hand.

The references in tests/data/cones/<stem>.json were traced by a person from zoomed renderings of
each file (see each file's "note"), not taken from this code's output.
"""

import json
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.pixels import iter_pixels

from testkit import shipped_file
from echoavc.cone import find_cone, mask_iou, polygon_mask
from echoavc.preprocess import StandardFrame
from echoavc.settings import ConeSettings

REFS = Path(__file__).parents[1] / "data" / "cones"
FILES = {
    # name: source expected with the file's own SequenceOfUltrasoundRegions
    "color3d_jpeg_baseline.dcm": "us_region",  # SonoSite, 120 frames, 480x640 YBR JPEG
    "examples_ybr_color.dcm": "image",  # SonoSite, 30 frames, rescaled to 240x320: its region points outside
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "us_region",  # Philips EPIQ 7C, one 768x1024 frame
}


@lru_cache(maxsize=None)
def load(name: str):
    """The clip's frame sample (as find_cone gets it from ingest) and its regions, unvalidated."""
    path = shipped_file(name)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    idx = np.linspace(0, n - 1, min(n, ConeSettings().sample_frames)).round().astype(int).tolist()
    frames = np.stack(list(iter_pixels(path, indices=idx)))
    regions = [
        (r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1)
        for r in ds.get("SequenceOfUltrasoundRegions", [])
    ]
    return frames, regions


def reference(name: str):
    ref = json.loads((REFS / (Path(name).stem + ".json")).read_text())
    shape = tuple(ref["shape"])
    return ref, polygon_mask(ref["polygon"], shape)


def marks_outside(name: str, frames: np.ndarray) -> np.ndarray:
    """Bright pixels of the text, icons, scales and ECG boxes noted with the reference,
    at least 2 px outside the hand-drawn outline."""
    ref, _ = reference(name)
    grey = frames.max(axis=0)
    if grey.ndim == 3:
        grey = grey.max(axis=2)
    poly = np.asarray(ref["polygon"], np.float32).reshape(-1, 1, 2)
    marks = np.zeros(grey.shape, bool)
    for y0, y1, x0, x1 in ref["outside_boxes"].values():
        for y, x in np.argwhere(grey[y0:y1, x0:x1] > 60):
            if cv2.pointPolygonTest(poly, (float(x0 + x + 0.5), float(y0 + y + 0.5)), True) <= -2:
                marks[y0 + y, x0 + x] = True
    return marks


@pytest.mark.parametrize("use_regions", [True, False], ids=["with-regions", "image-only"])
@pytest.mark.parametrize("name", FILES)
def test_cone_matches_the_hand_drawn_reference(name, use_regions):
    frames, regions = load(name)
    ref, ref_mask = reference(name)
    assert frames.shape[1:3] == ref_mask.shape

    cone = find_cone(frames, regions if use_regions else None)
    mask = cone.mask(ref_mask.shape)
    iou = mask_iou(mask, ref_mask)
    print(f"\n{name} ({'regions' if use_regions else 'image'}): {cone.kind}/{cone.source} IoU {iou:.4f} "
          f"apex {cone.apex} angles {cone.angles} radii {cone.radii} flag {cone.flag!r}")
    assert cone.kind == "sector"
    assert cone.source == (FILES[name] if use_regions else "image")
    assert iou >= 0.95

    marks = marks_outside(name, frames)
    assert marks.sum() >= 50  # the boxes do hold text
    assert not (mask & marks).any(), f"{int((mask & marks).sum())} text/ECG pixels inside the cone"


def test_timing_on_the_120_frame_clip(capsys):
    frames, regions = load("color3d_jpeg_baseline.dcm")
    best = min(_timed(lambda: find_cone(frames, regions)) for _ in range(3))
    cone = find_cone(frames, regions)
    sf = StandardFrame.of_sample(cone, frames, 640)
    per_frame = min(_timed(lambda: [sf.standard(f) for f in frames]) for _ in range(3))
    per_frame /= len(frames)
    with capsys.disabled():
        print(f"\nfind_cone on a {len(frames)}-frame sample of 480x640 RGB: {best * 1e3:.0f} ms; "
              f"standard frame: {per_frame * 1e3:.2f} ms per frame")
    assert best < 1.0
    assert per_frame < 0.02


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
