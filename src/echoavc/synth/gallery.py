"""Contact sheet of a synthetic cohort, for people: frames with their ground truth, beside real clips."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_bytes
from echoavc.synth.anatomy import valve_phase_column

THUMB_W, THUMB_H = 400, 300


def _thumb(img: np.ndarray, caption: str, box=None, nodules=(), color=(60, 220, 60)) -> np.ndarray:
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = img.copy()
    if box is not None:
        cv2.rectangle(img, (int(box[0]), int(box[1])), (int(round(box[2])) - 1, int(round(box[3])) - 1), color, 2)
    for x, y, r in nodules:
        cv2.circle(img, (int(x), int(y)), max(int(r) + 3, 4), (240, 60, 60), 1)
    h, w = img.shape[:2]
    s = min(THUMB_W / w, THUMB_H / h)
    small = cv2.resize(img, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    tile = np.zeros((THUMB_H + 22, THUMB_W, 3), np.uint8)
    tile[:small.shape[0], :small.shape[1]] = small
    cv2.putText(tile, caption, (4, THUMB_H + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return tile


def reference_tiles() -> list[np.ndarray]:
    """Frames of the real clips in pydicom-data; a tile saying so for each clip that is not installed (nothing is
    downloaded), with a warning."""
    from pydicom import dcmread

    from echoavc.synth.realism import REFERENCES, reference_file

    tiles, missing = [], []
    for ref in REFERENCES:
        path = reference_file(ref.file)
        if path is None:
            missing.append(ref.file)
            tile = np.zeros((THUMB_H, THUMB_W), np.uint8)
            for k, line in enumerate(("reference clip missing:", ref.file, "pip install pydicom-data")):
                cv2.putText(tile, line, (12, 120 + 26 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 200, 1, cv2.LINE_AA)
            tiles.append(_thumb(tile, f"REAL: {ref.name} (missing)", color=(0, 0, 0)))
            continue
        ds = dcmread(path)
        arr = ds.pixel_array
        frame = arr[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr
        tiles.append(_thumb(frame, f"REAL: {ref.name}", color=(0, 0, 0)))
    if missing:
        warnings.warn(f"gallery: real reference clips missing ({', '.join(missing)}): pip install pydicom-data; "
                      "nothing was downloaded", stacklevel=2)
    return tiles


def make_gallery(cohort_dir: str | Path, out_png: str | Path | None = None, per_grade: int = 3,
                 distractors: int = 3, reference: bool = True, columns: int = 4) -> Path:
    """Write a contact sheet PNG: real reference frames, then short-axis valve frames by grade
    (green: ground-truth box, red: nodules), then distractor views."""
    import pandas as pd
    from pydicom import dcmread

    cohort_dir = Path(cohort_dir)
    frames_csv = cohort_dir / "frames.csv"
    if not frames_csv.is_file():
        raise EchoAVCError("no frames.csv: not a synthetic cohort folder", cohort_dir)
    df = pd.read_csv(frames_csv)
    picks = []
    phases = valve_phase_column(df)
    av = df[(df.view == "psax_av") & (phases == "closed") & df.valve_x1.notna()]
    for g in range(4):
        sub = av[av.grade == g].drop_duplicates("exam_id").head(per_grade)
        picks += list(sub.itertuples())
    picks += list(df[df.view != "psax_av"].drop_duplicates("view").head(distractors).itertuples())
    tiles = reference_tiles() if reference else []
    cache: dict[str, np.ndarray] = {}
    for r in picks:
        if r.file not in cache:
            ds = dcmread(cohort_dir / r.file)
            arr = ds.pixel_array
            cache[r.file] = arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None]
        img = cache[r.file][int(r.frame_index)]
        box = None if pd.isna(r.valve_x1) else (r.valve_x1, r.valve_y1, r.valve_x2, r.valve_y2)
        cap = f"{r.view} {phases[r.Index]} grade {r.grade} {r.encoding} {r.layout}"
        tiles.append(_thumb(img, cap, box, json.loads(r.nodules)))
    if not tiles:
        raise EchoAVCError("nothing to show", cohort_dir)
    rows = []
    for i in range(0, len(tiles), columns):
        row = tiles[i:i + columns]
        row += [np.zeros_like(tiles[0])] * (columns - len(row))
        rows.append(np.hstack(row))
    sheet = np.vstack(rows)
    out_png = Path(out_png) if out_png else cohort_dir / "gallery.png"
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise EchoAVCError("PNG encoding failed", out_png)
    atomic_write_bytes(out_png, png.tobytes())
    return out_png


#: The views of :func:`compare_anatomies`: (view, zoomed, short-axis level).
COMPARED = (("psax_av", False, ""), ("psax_av", True, ""), ("psax_mid", False, "base"), ("psax_mid", False, "mid"),
            ("psax_mid", False, "apex"), ("plax", False, ""), ("a4c", False, ""), ("subcostal", False, ""))
#: views only the realistic generator draws (the classic row shows an empty tile)
REALISTIC_ONLY = ("subcostal",)


def compare_anatomies(out_png: str | Path, seed: int = 0, grade: int = 2, width: int = 1800) -> Path:
    """One heart drawn by both generators, view by view (top row classic, bottom row realistic), with valve boxes.

    Each frame is a whole screen (layout ``console``); the realistic one also draws its own acquisition and overlays.
    """
    from echoavc.synth import anatomy as A
    from echoavc.synth import cohort as C

    rows = []
    for anatomy in ("classic", "realistic"):
        tiles = []
        for k, (view, zoomed, level) in enumerate(COMPARED):
            if anatomy == "classic" and view in REALISTIC_ONLY:
                tiles.append(_thumb(np.zeros((THUMB_H, THUMB_W), np.uint8), f"classic: no {view} view"))
                continue
            rng = np.random.default_rng([seed, k])
            heart = A.Heart.sample(rng, grade)
            plan = C.ClipPlan(view, 1, "raw_mono", "console", False, zoomed, 1, level)
            frames, truth, *_ = C.render_clip(heart, plan, rng, 70, anatomy)
            name = view + (" zoomed" if zoomed else "") + (f" ({level})" if anatomy == "realistic" and level else "")
            tiles.append(_thumb(frames[0], f"{anatomy}: {name}", truth[0]["box"]))
        rows.append(np.hstack(tiles))
    sheet = np.vstack(rows)
    if sheet.shape[1] > width:
        sheet = cv2.resize(sheet, (width, int(sheet.shape[0] * width / sheet.shape[1])), interpolation=cv2.INTER_AREA)
    out_png = Path(out_png)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise EchoAVCError("cannot encode the figure", out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_png, buf.tobytes())
    return out_png
