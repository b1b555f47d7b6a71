"""Vendor-like screen layouts: where the sector sits, burned-in text, depth scale, ECG, logo.

Three fictional layouts modelled on common machines (names and logos are
invented): ``compact`` (hand-carried, 480x640), ``console`` (cart system,
600x800, header bar) and ``cart`` (premium cart, 768x1024, flat near field).
Burned-in text includes the patient's name, ID and the exam date, so that
de-identification has something to find; it never names the view or the
diagnosis (that would leak labels to a classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from echoavc.synth.scanner import Display


@dataclass(frozen=True)
class Layout:
    name: str
    width: int
    height: int
    apex_y: float  #: probe position (pixels from the top) for an unzoomed sector
    apex_x_frac: float  #: probe position as a fraction of the width
    bottom: int  #: lowest row the sector may reach
    side_margin: int  #: pixels kept free left and right of the sector
    near_cut_frac: float  #: near-field range hidden under the probe, fraction of the depth
    font: int
    font_scale: float
    vendor: str
    model: str
    ecg: bool


LAYOUTS = {
    "compact": Layout("compact", 640, 480, 40, 0.53, 418, 60, 0.02, cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                      "Sonique Systems", "Pocket S2", False),
    "console": Layout("console", 800, 600, 62, 0.5, 520, 110, 0.03, cv2.FONT_HERSHEY_DUPLEX, 0.42,
                      "Helix Medical", "Vela C8", True),
    "cart": Layout("cart", 1024, 768, 78, 0.5, 655, 120, 0.15, cv2.FONT_HERSHEY_SIMPLEX, 0.62,
                   "Orbis Imaging", "Aurea 7", True),
}


def sector_display(layout: Layout, depth_mm: float, half_angle_deg: float,
                   zoom: tuple[float, float, float] | None = None) -> Display:
    """The sector's place on screen.

    ``zoom``: (range start mm, range end mm, lateral centre mm) of a zoomed
    acquisition; the zoomed field fills a box under the header.
    """
    w = layout.width
    if zoom is None:
        avail = layout.bottom - layout.apex_y
        side = (w / 2 - layout.side_margin) / math.sin(math.radians(half_angle_deg))
        r_px = min(avail, side)
        ppm = r_px / depth_mm
        return Display(w, layout.height, w * layout.apex_x_frac, layout.apex_y, ppm,
                       max(layout.near_cut_frac * depth_mm, 2.0), depth_mm, half_angle_deg)
    r0, r1, xc = zoom
    top = int(layout.apex_y * 0.6)
    ppm = (layout.bottom - top) / (r1 - r0)
    box_w = int(min(w - 2 * layout.side_margin, (r1 - r0) * 1.25 * ppm))
    cx = w * layout.apex_x_frac
    apex_x = cx - xc * ppm
    apex_y = top - r0 * ppm
    x1 = int(cx - box_w / 2)
    return Display(w, layout.height, apex_x, apex_y, ppm, r0, r1, half_angle_deg,
                   clip_box=(x1, top, x1 + box_w, layout.bottom))


def ecg_wave(t: np.ndarray) -> np.ndarray:
    """A PQRST complex per unit of ``t`` (cycles; R wave at integer t)."""
    p = t - np.floor(t + 0.2)
    return (0.12 * np.exp(-((p + 0.16) / 0.025) ** 2) - 0.1 * np.exp(-((p + 0.02) / 0.008) ** 2)
            + 1.0 * np.exp(-(p / 0.012) ** 2) - 0.22 * np.exp(-((p - 0.025) / 0.01) ** 2)
            + 0.25 * np.exp(-((p - 0.3) / 0.05) ** 2))


@dataclass(frozen=True)
class ScreenText:
    patient_name: str  #: as displayed, e.g. "DOE, JANE"
    patient_id: str
    date: str  #: as displayed
    time: str
    institution: str
    frame_rate_hz: float
    depth_mm: float
    freq_mhz: float
    gain: int
    dynamic_range_db: float
    heart_rate_bpm: int


def _put(img, text, org, layout: Layout, color, scale=1.0, thick=1):
    cv2.putText(img, text, (int(org[0]), int(org[1])), layout.font, layout.font_scale * scale, color, thick,
                cv2.LINE_AA)


@dataclass(frozen=True)
class EcgStyle:
    """How a screen shows the ECG (on the layouts that have one): the defaults are the layouts' own."""

    drawn: bool = True
    color: tuple[int, int, int] = (40, 210, 90)  #: RGB of the trace
    beats: float = 2.2  #: R-R intervals across the strip (the sweep speed)
    marker: bool = True  #: the current-frame marker


#: trace colours scanners use (RGB): green, yellow, cyan, orange
ECG_COLORS = ((40, 210, 90), (230, 200, 60), (80, 200, 230), (240, 150, 40))
#: R-R intervals across the strip: faster and slower sweeps
ECG_BEATS = (2.2, 2.6, 3.2)


def ecg_strip_box(layout: Layout, style: EcgStyle | None = None) -> tuple[int, int, int, int]:
    """The screen rectangle (x0, y0, x1, y1, inclusive) the ECG strip occupies (its Ultrasound Region)."""
    h, w = layout.height, layout.width
    return 56, h - 40 - 28 - 10, int(w * 0.42) + 4, h - 40 + 14


def overlay(frame: np.ndarray, disp: Display, layout: Layout, text: ScreenText, phase: float,
            rng_seed: int, ecg: EcgStyle | None = None) -> np.ndarray:
    """Draw the vendor screen around a sector image. ``frame``: (H, W, 3) uint8 RGB, modified and returned.

    ``ecg``: how the ECG is shown on layouts that have one (None: the layout's own green trace)."""
    rng = np.random.default_rng(rng_seed)
    white, grey, dim = (235, 235, 235), (170, 170, 170), (110, 110, 110)
    green, yellow, cyan = (40, 210, 90), (230, 200, 60), (80, 200, 230)
    h, w = frame.shape[:2]
    lh = int(26 * layout.font_scale / 0.45 * 0.62) + 6
    if layout.name == "console":
        cv2.rectangle(frame, (0, 0), (w, 28), (38, 42, 48), -1)
        _put(frame, text.patient_name, (10, 19), layout, white)
        _put(frame, f"ID {text.patient_id}", (260, 19), layout, white)
        _put(frame, text.institution, (430, 19), layout, grey)
        _put(frame, f"{text.date}  {text.time}", (w - 190, 19), layout, white)
        ys = 60
        for line in (f"{text.freq_mhz:.1f}MHz", f"FR {text.frame_rate_hz:.0f}", f"Gn {text.gain}",
                     f"DR {text.dynamic_range_db:.0f}", f"D {text.depth_mm / 10:.1f}cm", "AO 92%"):
            _put(frame, line, (10, ys), layout, grey)
            ys += lh
        _logo(frame, (w - 95, 55), layout, cyan)
    elif layout.name == "cart":
        _put(frame, text.patient_name, (14, 34), layout, white, 1.1, 2)
        _put(frame, f"{text.patient_id}   {text.institution}", (14, 62), layout, grey)
        _put(frame, f"{text.freq_mhz:.1f} MHz", (14, 110), layout, white)
        _put(frame, f"{text.frame_rate_hz:.0f}Hz", (14, 136), layout, white)
        _put(frame, f"{text.depth_mm / 10:.0f}cm", (14, 162), layout, white)
        for i, line in enumerate(("2D", f" {text.gain}%", f"C {text.dynamic_range_db:.0f}", "P Low", "HGen")):
            _put(frame, line, (14, 214 + i * 24), layout, white)
        _put(frame, f"{text.date} {text.time}", (w - 260, 34), layout, white)
        _put(frame, "TIS0.4  MI 1.2", (w - 260, 62), layout, white)
        # grey bar
        bar = np.linspace(255, 0, 200).astype(np.uint8)
        frame[120:320, w - 58:w - 42] = bar[:, None, None]
        _logo(frame, (w - 70, 95), layout, grey)
    else:  # compact
        _logo(frame, (8, 6), layout, white, small=True)
        _put(frame, "Crd", (28, 20), layout, white)
        _put(frame, text.patient_name, (8, 40), layout, white)
        _put(frame, text.patient_id, (8, 58), layout, white)
        _put(frame, text.date, (w - 100, 20), layout, white)
        _put(frame, text.time, (w - 100, 38), layout, white)
        _put(frame, f"MI 0.{int(rng.integers(6, 10))}", (w - 50, 140), layout, white)
        # bottom toolbar
        y0 = h - 28
        cv2.rectangle(frame, (78, y0), (w - 78, h - 2), (34, 38, 46), -1)
        for i, lab in enumerate(("Gen", f"{text.gain}", "Sector", "Page 1/3")):
            x = 80 + i * (w - 160) // 4
            cv2.line(frame, (x, y0), (x, h - 2), dim, 1)
            _put(frame, lab, (x + 24, h - 9), layout, grey)
    _depth_scale(frame, disp, layout, white)
    if layout.ecg and (ecg is None or ecg.drawn):
        style = ecg or EcgStyle()
        _ecg(frame, layout, phase, text.heart_rate_bpm, style.color, style.beats, style.marker)
        _put(frame, f"{text.heart_rate_bpm}bpm", (w - 110, h - 30), layout, white)
    # a marker dot beside the probe (orientation mark)
    if disp.clip_box is None:
        cv2.circle(frame, (int(disp.apex_x + 40), int(max(disp.apex_y, 8))), 5, yellow if layout.name != "compact" else green, -1)
    return frame


def _logo(img, org, layout: Layout, color, small=False):
    x, y = org
    s = 7 if small else 10
    pts = np.array([[x, y + 2 * s], [x + s, y], [x + 2 * s, y + 2 * s]], np.int32)
    cv2.polylines(img, [pts], True, color, 1, cv2.LINE_AA)
    cv2.circle(img, (x + s, y + int(1.3 * s)), max(s // 3, 2), color, -1, cv2.LINE_AA)
    if not small:
        _put(img, layout.vendor.split()[0].upper(), (x - 40, y + 2 * s + 16), layout, color, 0.7)


def _depth_scale(img, disp: Display, layout: Layout, color):
    """Tick marks every cm along the right edge of the sector, labels every 5 cm."""
    half = math.radians(disp.half_angle_deg) + math.radians(2.5)
    for cm in range(int(math.ceil(disp.r_min_mm / 10)), int(disp.r_max_mm // 10) + 1):
        r = cm * 10 * disp.px_per_mm
        x = disp.apex_x + r * math.sin(half)
        y = disp.apex_y + r * math.cos(half)
        if disp.clip_box is not None:
            x = disp.clip_box[2] + 8
        if not (0 <= x < img.shape[1] - 4 and 0 <= y < img.shape[0] - 4):
            continue
        big = cm % 5 == 0
        cv2.circle(img, (int(x), int(y)), 2 if big else 1, color, -1)
        if big:
            _put(img, str(cm), (x + 6, y + 5), layout, color, 0.8)


def _ecg(img, layout: Layout, phase: float, bpm: int, color, beats: float = 2.2, marker: bool = True):
    h, w = img.shape[:2]
    x0, x1 = 60, int(w * 0.42)
    base = h - 40
    amp = 28
    xs = np.arange(x0, x1)
    t = (xs - x0) / (x1 - x0) * beats
    ys = base - amp * ecg_wave(t)
    pts = np.stack([xs, ys], axis=1).astype(np.int32)
    cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
    if marker:
        cur = x0 + int((1 + phase) / beats * (x1 - x0))
        cv2.line(img, (cur, base - amp - 6), (cur, base + 10), (230, 230, 230), 1)
    cv2.line(img, (x0, base + 12), (x0, base + 6), color, 1)
