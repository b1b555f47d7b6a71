"""Numbers that compare synthetic frames with real echo clips.

Two kinds of statistics, computed inside the cone only:

- the intensity histogram: fraction of dark pixels (< ``DARK_LEVEL``),
  median, 95th percentile, fraction of saturated pixels (>= ``SATURATED_LEVEL``);
- the speckle grain: full width at half maximum of the mean autocorrelation
  of 32x32 windows lying wholly inside the cone, laterally (along rows) and
  axially (along columns), in pixels.

The real references are the echo clips shipped in ``pydicom-data`` (offline),
with hand-measured sector outlines (apex, radii, sides) eroded by 8 pixels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from dataclasses import dataclass

import cv2
import numpy as np

DARK_LEVEL = 16
SATURATED_LEVEL = 250
GRAIN_WINDOW = 32


@dataclass(frozen=True)
class Sector:
    """A sector outline in pixel coordinates (angles from straight down; left negative)."""

    apex_x: float
    apex_y: float
    r_min: float
    r_max: float
    left_deg: float
    right_deg: float
    clip_box: tuple[int, int, int, int] | None = None  #: x1, y1, x2, y2 (zoomed acquisitions)

    def mask(self, shape: tuple[int, int], erode: int = 8) -> np.ndarray:
        h, w = shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dx, dy = xx + 0.5 - self.apex_x, yy + 0.5 - self.apex_y
        r = np.hypot(dx, dy)
        th = np.degrees(np.arctan2(dx, dy))
        m = (r >= self.r_min) & (r <= self.r_max) & (th >= -self.left_deg) & (th <= self.right_deg)
        if self.clip_box is not None:
            x1, y1, x2, y2 = self.clip_box
            box = np.zeros_like(m)
            box[y1:y2, x1:x2] = True
            m &= box
        if erode:
            m = cv2.erode(m.astype(np.uint8), np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)).astype(bool)
        return m


@dataclass(frozen=True)
class Reference:
    name: str
    file: str  #: pydicom-data test file name
    frames: tuple[int, ...]
    sector: Sector
    description: str


#: Real clips and their sectors, measured by hand on the images (see docs/synth.md).
REFERENCES = (
    Reference("sonosite_a4c", "color3d_jpeg_baseline.dcm", (0, 30, 60, 90),
              Sector(340, 40, 20, 365, 45, 45),
              "SonoSite Turbo, apical four-chamber, 480x640 YBR_FULL_422 JPEG baseline, 120 frames"),
    Reference("philips_epiq_plax", "JPGLosslessP14SV1_1s_1f_8b.dcm", (0,),
              Sector(509, 78, 100, 557, 41.6, 45.3),
              "Philips EPIQ 7C, parasternal, 768x1024 MONOCHROME2 JPEG lossless, 1 frame"),
)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Decoded frame (H, W) or (H, W, 3) RGB -> uint8 grey (luma)."""
    if frame.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return frame.astype(np.uint8)


def intensity_stats(gray: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    v = gray[mask].astype(np.float64)
    return {
        "dark_fraction": float((v < DARK_LEVEL).mean()),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "saturated_fraction": float((v >= SATURATED_LEVEL).mean()),
    }


def _fwhm(profile: np.ndarray) -> float:
    for k in range(1, len(profile)):
        if profile[k] < 0.5:
            return 2.0 * (k - 1 + (profile[k - 1] - 0.5) / (profile[k - 1] - profile[k]))
    return float("nan")


def mean_autocorrelation(image: np.ndarray, mask: np.ndarray, win: int) -> np.ndarray | None:
    """Mean normalised 2-D autocorrelation (2*win square, zero lag at [win, win]) of the half-overlapping
    win x win windows that lie inside ``mask`` and are not flat; None when there is no such window."""
    h, w = image.shape
    ok = cv2.erode(mask.astype(np.uint8), np.ones((win, win), np.uint8), anchor=(0, 0)).astype(bool)
    acc = np.zeros((2 * win, 2 * win))
    n = 0
    for y in range(0, h - win, win // 2):
        for x in range(0, w - win, win // 2):
            if not ok[y, x]:
                continue
            p = image[y:y + win, x:x + win].astype(np.float64)
            p = p - p.mean()
            if p.std() < 1.0:
                continue
            f = np.fft.fft2(p, s=(2 * win, 2 * win))
            ac = np.fft.fftshift(np.fft.ifft2(np.abs(f) ** 2).real)
            acc += ac / ac[win, win]
            n += 1
    return acc / n if n else None


def grain(gray: np.ndarray, mask: np.ndarray, win: int = GRAIN_WINDOW) -> dict[str, float]:
    """Speckle grain: FWHM (pixels) of the mean normalised autocorrelation of in-cone windows."""
    ac = mean_autocorrelation(gray, mask, win)
    if ac is None:
        return {"grain_lateral_px": float("nan"), "grain_axial_px": float("nan")}
    return {"grain_lateral_px": _fwhm(ac[win, win:]), "grain_axial_px": _fwhm(ac[win:, win])}


def frame_stats(gray: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    return {**intensity_stats(gray, mask), **grain(gray, mask)}


def reference_file(name: str) -> Path | None:
    """A real clip shipped with pydicom or pydicom-data, by exact name; None when it is not installed.

    Never downloads: pydicom's ``get_testdata_file`` fetches missing files from the internet unless told not to.
    """
    try:
        from pydicom.data import get_testdata_file
    except ImportError:  # pragma: no cover
        return None
    path = get_testdata_file(name, download=False)
    return Path(path) if path else None


def missing_references() -> list[str]:
    """The reference clips that are not installed (pip install pydicom-data)."""
    return [ref.file for ref in REFERENCES if reference_file(ref.file) is None]


def reference_stats() -> list[dict[str, float]]:
    """Statistics of the real clips in pydicom-data, one row per frame used."""
    from pydicom import dcmread

    rows = []
    for ref in REFERENCES:
        path = reference_file(ref.file)
        if path is None:
            raise FileNotFoundError(f"{ref.file} not found: install pydicom-data (the reference clips)")
        ds = dcmread(path)
        arr = ds.pixel_array
        if int(ds.get("NumberOfFrames", 1) or 1) == 1:
            arr = arr[None]
        for i in ref.frames:
            gray = to_gray(arr[i])
            mask = ref.sector.mask(gray.shape)
            rows.append({"reference": ref.name, "frame": i, **frame_stats(gray, mask)})
    return rows


#: Tolerances: the synthetic cohort's median of each statistic must lie within
#: the span of the real clips widened by this much (absolute, or relative for grain).
TOLERANCE_ABS = {"dark_fraction": 0.10, "median": 10.0, "p95": 25.0, "saturated_fraction": 0.01}
TOLERANCE_REL = {"grain_lateral_px": 0.30, "grain_axial_px": 0.30}
STATS = ("dark_fraction", "median", "p95", "saturated_fraction", "grain_lateral_px", "grain_axial_px")


def acceptance_ranges(reference_rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    out = {}
    for k in STATS:
        vals = [r[k] for r in reference_rows]
        lo, hi = min(vals), max(vals)
        if k in TOLERANCE_ABS:
            t = TOLERANCE_ABS[k]
            out[k] = (max(lo - t, 0.0), hi + t)
        else:
            t = TOLERANCE_REL[k]
            out[k] = (lo * (1 - t), hi * (1 + t))
    return out


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Median over frames of each statistic (NaN-safe: NaN when no frame has a value)."""
    out = {}
    for k in STATS:
        vals = np.array([r[k] for r in rows], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        out[k] = float(np.median(vals)) if vals.size else float("nan")
    return out


def check(synthetic_rows: list[dict[str, float]], reference_rows: list[dict[str, float]]):
    """-> {stat: (synthetic median, (low, high), ok)}."""
    ranges = acceptance_ranges(reference_rows)
    med = summarise(synthetic_rows)
    return {k: (med[k], ranges[k], bool(ranges[k][0] <= med[k] <= ranges[k][1]) and not math.isnan(med[k]))
            for k in STATS}


def sector_of(row) -> Sector:
    """The cone of a synthetic frame, from its frames.csv row (a dict or a namedtuple)."""
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    clip = get("cone_clip_box")
    clip = tuple(json.loads(clip)) if isinstance(clip, str) and clip else None
    half = float(get("cone_half_angle_deg"))
    return Sector(float(get("cone_apex_x")), float(get("cone_apex_y")), float(get("cone_r_min_px")),
                  float(get("cone_r_max_px")), half, half, clip)


def _grey_frames(cohort_dir: Path, df):
    """(row, grey frame) for each frame-table row, decoding each DICOM file once (rows are grouped by file)."""
    from pydicom import dcmread

    current, frames = None, None
    for r in df.itertuples():
        if r.file != current:
            ds = dcmread(cohort_dir / r.file)
            arr = ds.pixel_array
            current, frames = r.file, (arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None])
        yield r, to_gray(frames[int(r.frame_index)])


def cohort_stats(cohort_dir, views: tuple[str, ...] | None = None, max_frames: int | None = None,
                 every: int = 1) -> list[dict[str, float]]:
    """Statistics of the frames of a synthetic cohort (decoded from its DICOM files)."""
    import pandas as pd

    cohort_dir = Path(cohort_dir)
    df = pd.read_csv(cohort_dir / "frames.csv")
    if views:
        df = df[df.view.isin(views)]
    df = df.iloc[::every]
    if max_frames:
        df = df.head(max_frames)
    rows = []
    for r, gray in _grey_frames(cohort_dir, df):
        mask = sector_of(r).mask(gray.shape)
        rows.append({"file": r.file, "frame": int(r.frame_index), "view": r.view, **frame_stats(gray, mask)})
    return rows


#: The paper's heuristic baseline thresholds (Elvas et al. 2024, Table 2).
BASELINE_THRESHOLDS = (190, 200, 210, 220)


def baseline_accuracy(cohort_dir, thresholds: tuple[int, ...] = BASELINE_THRESHOLDS,
                      phase: str | None = "closed") -> dict[int, dict[str, float]]:
    """The paper's heuristic on a synthetic cohort: binarise the valve crop (ground-truth box,
    grey levels) at each threshold; calcified when any pixel is above it. One decision per
    short-axis aortic-valve frame (``phase``: only frames with the aortic valve "closed" or "open" (older
    names "diastole", "systole" accepted); None: all).

    Returns {threshold: {accuracy, precision, recall, n, positives}}.
    """
    import pandas as pd

    cohort_dir = Path(cohort_dir)
    df = pd.read_csv(cohort_dir / "frames.csv")
    df = df[(df.view == "psax_av") & df.valve_x1.notna()]
    if phase:
        from echoavc.synth.anatomy import OLD_PHASE_NAMES, valve_phase_column

        df = df[valve_phase_column(df) == OLD_PHASE_NAMES.get(phase, phase)]
    maxima, truth = [], []
    for r, gray in _grey_frames(cohort_dir, df):
        x1, y1 = int(math.floor(r.valve_x1)), int(math.floor(r.valve_y1))
        x2, y2 = int(math.ceil(r.valve_x2)), int(math.ceil(r.valve_y2))
        maxima.append(int(gray[y1:y2, x1:x2].max()))
        truth.append(int(r.calcified))
    maxima, truth = np.array(maxima), np.array(truth, dtype=bool)
    out = {}
    for t in thresholds:
        pred = maxima > t
        tp = int((pred & truth).sum())
        out[int(t)] = {
            "accuracy": float((pred == truth).mean()) if truth.size else float("nan"),
            "precision": tp / max(int(pred.sum()), 1),
            "recall": tp / max(int(truth.sum()), 1),
            "n": int(truth.size),
            "positives": int(truth.sum()),
        }
    return out


def cone_agreement(cohort_dir, manifest) -> list[dict]:
    """Compare the cone that ingest detected (manifest column ``cone``) with the true sector.

    One row per synthetic file: ``file``, ``iou`` (detected vs true cone mask), ``kind``/``source``
    of the detected cone, and ``valve_inside`` (every true valve box of the file lies inside
    the detected cone's bounding box; True when the file has no valve box), ``zoomed``.
    """
    import pandas as pd

    from echoavc.cone import Cone
    from echoavc.cone.geometry import mask_bbox

    cohort_dir = Path(cohort_dir)
    df = pd.read_csv(cohort_dir / "frames.csv")
    man = pd.read_csv(manifest).drop_duplicates("source_sha256").set_index("source_sha256")
    out = []
    for sha, g in df.groupby("source_sha256", sort=False):
        r = g.iloc[0]
        shape = (int(r["rows"]), int(r["columns"]))
        true = sector_of(r.to_dict()).mask(shape, erode=0)
        if sha not in man.index:
            out.append({"file": r["file"], "iou": 0.0, "kind": "missing", "source": "", "valve_inside": False,
                        "zoomed": bool(r["zoomed"])})
            continue
        m = man.loc[sha]
        det = Cone.from_dict(json.loads(m["cone"])).mask(shape)
        union = np.count_nonzero(det | true)
        iou = np.count_nonzero(det & true) / union if union else 0.0
        bx, by, bw, bh = mask_bbox(det)
        inside = True
        for v in g.dropna(subset=["valve_x1"]).itertuples():
            if v.valve_x1 < bx - 1 or v.valve_y1 < by - 1 or v.valve_x2 > bx + bw + 1 or v.valve_y2 > by + bh + 1:
                inside = False
        out.append({"file": r["file"], "iou": float(iou), "kind": m["cone_kind"], "source": m["cone_source"],
                    "valve_inside": inside, "zoomed": bool(r["zoomed"])})
    return out


# ----------------------------------------------------------------------------- beyond brightness (sim-to-real)
# Speckle statistics, texture and a hand-made feature distance, computed on ingested standard frames (the pixels the
# detector sees, the same scale for every scanner and screen size), inside the cone mapped by the ingest transform.

GLCM_LEVELS = 16
GLCM_OFFSET_PX = 4
TEXTURE_STATS = ("speckle_snr", "glcm_contrast", "glcm_homogeneity", "glcm_correlation", "structure_length_px")
FEATURES = STATS + TEXTURE_STATS


def speckle_snr(gray: np.ndarray, mask: np.ndarray, win: int = 16) -> float:
    """Median over in-cone windows of mean / std of the grey level (fully developed speckle on a linear envelope:
    1.91; log compression and structure change it), windows with mean >= 20 only (not cavities)."""
    ok = cv2.erode(mask.astype(np.uint8), np.ones((win, win), np.uint8), anchor=(0, 0)).astype(bool)
    vals = []
    for y in range(0, gray.shape[0] - win, win):
        for x in range(0, gray.shape[1] - win, win):
            if ok[y, x]:
                p = gray[y:y + win, x:x + win].astype(np.float64)
                if p.mean() >= 20 and p.std() > 0:
                    vals.append(p.mean() / p.std())
    return float(np.median(vals)) if vals else float("nan")


def glcm(gray: np.ndarray, mask: np.ndarray, offset: int = GLCM_OFFSET_PX, levels: int = GLCM_LEVELS) -> dict:
    """Grey-level co-occurrence (Haralick) over in-cone pixel pairs ``offset`` apart, laterally and axially."""
    q = np.minimum(gray.astype(np.int32) * levels // 256, levels - 1)
    m = np.zeros((levels, levels))
    for dy, dx in ((0, offset), (offset, 0)):
        a, b = q[:q.shape[0] - dy, :q.shape[1] - dx], q[dy:, dx:]
        ok = mask[:mask.shape[0] - dy, :mask.shape[1] - dx] & mask[dy:, dx:]
        m += np.bincount(a[ok] * levels + b[ok], minlength=levels * levels).reshape(levels, levels)
    m = m + m.T
    p = m / max(m.sum(), 1.0)
    i, j = np.mgrid[0:levels, 0:levels]
    mu_i, mu_j = (i * p).sum(), (j * p).sum()
    sd_i, sd_j = math.sqrt(((i - mu_i) ** 2 * p).sum()), math.sqrt(((j - mu_j) ** 2 * p).sum())
    return {"glcm_contrast": float(((i - j) ** 2 * p).sum()),
            "glcm_homogeneity": float((p / (1.0 + np.abs(i - j))).sum()),
            "glcm_correlation": float(((i - mu_i) * (j - mu_j) * p).sum() / (sd_i * sd_j)) if sd_i * sd_j > 0 else 0.0}


def structure_length(gray: np.ndarray, mask: np.ndarray, win: int = 96) -> float:
    """Anatomy scale: mean radius (px) where the in-cone autocorrelation of large windows falls to 1/e."""
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 3.0)  # above the speckle grain
    ac = mean_autocorrelation(g, mask, win)
    if ac is None:
        return float("nan")
    yy, xx = np.mgrid[-win:win, -win:win]
    r = np.hypot(yy, xx).astype(int)
    prof = np.bincount(r.ravel(), ac.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    below = np.nonzero(prof[:win] < 1 / math.e)[0]
    return float(below[0]) if below.size else float(win)


def texture_stats(gray: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    return {"speckle_snr": speckle_snr(gray, mask), **glcm(gray, mask),
            "structure_length_px": structure_length(gray, mask)}


def ingested_stats(ingest_dir, every: int = 1, erode: int = 8) -> list[dict]:
    """Every statistic (brightness, grain, texture) of the standard frames of an ingest folder, inside each frame's
    cone mapped to the standard image by its ingest transform (manifest columns)."""
    import pandas as pd

    from echoavc.cone import Cone
    from echoavc.cone.transform import StandardTransform

    ingest_dir = Path(ingest_dir)
    man = pd.read_csv(ingest_dir / "manifest.csv", dtype={"source_sha256": str}).iloc[::every]
    rows = []
    for r in man.to_dict("records"):
        img = cv2.imread(str(ingest_dir / r["image_path"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        t = StandardTransform.from_dict({**r, "size": r["std_size"]})
        cone = Cone.from_dict(json.loads(r["cone"])).mask((int(r["original_rows"]), int(r["original_cols"])))
        mask = t.apply(cone.astype(np.uint8), cv2.INTER_NEAREST) > 0
        if erode:
            mask = cv2.erode(mask.astype(np.uint8), np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)).astype(bool)
        if mask.sum() < 1000:
            continue
        rows.append({"source_sha256": r["source_sha256"], "frame_index": int(r["frame_index"]),
                     **frame_stats(gray, mask), **texture_stats(gray, mask)})
    return rows


def feature_distance(rows: list[dict], reference: list[dict]) -> dict[str, float]:
    """Hand-made feature distance: per feature, |median(rows) - median(reference)| in units of the reference's
    spread (inter-quartile range / 1.349, floored at 5% of its median); and their mean ("mean_z")."""
    out = {}
    for k in FEATURES:
        a = np.array([r[k] for r in rows], float)
        b = np.array([r[k] for r in reference], float)
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if not a.size or not b.size:
            out[k] = float("nan")
            continue
        q1, q3 = np.percentile(b, [25, 75])
        spread = max((q3 - q1) / 1.349, 0.05 * abs(float(np.median(b))), 1e-3)
        out[k] = float(abs(np.median(a) - np.median(b)) / spread)
    vals = [v for v in out.values() if not math.isnan(v)]
    out["mean_z"] = float(np.mean(vals)) if vals else float("nan")
    return out
