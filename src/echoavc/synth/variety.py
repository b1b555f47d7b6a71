"""Acquisition variety and overlays inside the field for the "realistic" anatomy (docs/synth.md, "Sim-to-real").

- :func:`acquisition`: wider ranges than the classic generator (depth 90-200 mm, sector 40-90 deg, focus, a
  harder TGC error, frequency 1.6-3.6 MHz), and a display that shows myocardium at a mid grey (white level
  32-42 dB above it, as the classic generator, dynamic range 45-70 dB);
- :func:`zoom_window`: zoomed aortic-root views in which the valve ring fills about half of the field, cut to a
  box or left as a narrow sector;
- :func:`grey_map`: vendor-like compression curves (power, S-curve, lifted blacks), persistence / spatial
  smoothing, reduced resolution, an occasional colour tint;
- :func:`field_overlays`: inside the field, a colour-Doppler box with colour over the blood, callipers with a
  measurement, an M-mode cursor line, short measurement text. Never a view name or label.

Pure numpy/OpenCV; randomness only from the Generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from echoavc.synth import scanner as S

#: Share of realistic aortic-valve clips acquired zoomed on the root.
ZOOM_SHARE = 0.4


#: Receiver noise floor as a share of the displayed dynamic range: lower than the classic generator's, real
#: cavities are darker (in-cone dark fraction 0.02-0.5 on the real development frames)
FLOOR_DISPLAY = (0.06, 0.2)


def acquisition(rng: np.random.Generator, view: str, floor_display: tuple[float, float] = FLOOR_DISPLAY) -> S.Acquisition:
    u = rng.uniform
    depth = float(u(140, 200) if view in ("a4c", "subcostal") else u(90, 175))
    gain, dr, white = float(u(-5, 5)), float(u(45, 70)), float(u(32, 42))
    floor_db = float(u(*floor_display)) * dr - (dr - white) - gain
    return S.Acquisition(
        depth_mm=depth, sector_deg=float(u(40, 90)), freq_mhz=float(u(1.6, 3.6)),
        pulse_sigma_cycles=float(u(1.2, 2.6)), focus_mm=float(u(0.3, 0.8) * depth), aperture_mm=float(u(18, 28)),
        n_lines=int(rng.integers(140, 220)), gain_db=gain, dynamic_range_db=dr, tissue_level_db=dr - white,
        grey_gamma=float(u(1.2, 2.0)), noise_db=float(u(-54, -40)), floor_db=floor_db,
        tgc_error_db=tuple(float(x) for x in rng.normal(0, 4.0, 5)), frame_correlation=float(u(0.3, 0.7)))


def zoom_window(rng: np.random.Generator, z_mm: float, x_mm: float, depth_mm: float) -> tuple[float, float, float]:
    """(range start, range end, lateral centre) of a zoom on the root: 45-70 mm of range around the valve."""
    r0 = max(z_mm - rng.uniform(20, 32), 5.0)
    r1 = min(z_mm + rng.uniform(22, 36), depth_mm)
    return float(r0), float(r1), float(x_mm)


def grey_map(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A vendor-like compression curve on a 0-255 float image (after log compression)."""
    x = np.clip(img / 255.0, 0.0, 1.0)
    kind = rng.choice(["power", "s-curve", "lifted"])
    if kind == "s-curve":
        k = rng.uniform(4.0, 9.0)
        m = rng.uniform(0.35, 0.6)
        lo, hi = 1 / (1 + math.exp(k * m)), 1 / (1 + math.exp(-k * (1 - m)))
        x = (1 / (1 + np.exp(-k * (x - m))) - lo) / (hi - lo)
    elif kind == "lifted":
        x = rng.uniform(0.02, 0.08) + (1 - rng.uniform(0.0, 0.1)) * np.power(x, rng.uniform(0.8, 1.3))
    return (255.0 * np.clip(x, 0.0, 1.0)).astype(np.float32)


def smooth_polar(polar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Persistence / spatial compounding: smooths speckle on the beam grid (axial and lateral)."""
    if rng.uniform() < 0.35:
        return polar
    sa, sl = float(rng.uniform(0.2, 0.7)), float(rng.uniform(0.3, 1.0))
    return cv2.GaussianBlur(polar, (0, 0), sigmaX=sl, sigmaY=sa)


def resolution(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lower display resolution now and then (older scanners, exports)."""
    if rng.uniform() >= 0.25:
        return frame
    h, w = frame.shape[:2]
    f = float(rng.uniform(0.5, 0.8))
    small = cv2.resize(frame, (max(int(w * f), 8), max(int(h * f), 8)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def tint(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Some vendors show B-mode with a colour tint (sepia, blue): 15% of clips."""
    if rng.uniform() >= 0.15:
        return frame
    t = np.array(rng.choice([[1.0, 0.93, 0.8], [0.85, 0.95, 1.0], [1.0, 0.97, 0.9]]), np.float32)
    return np.clip(frame.astype(np.float32) * t, 0, 255).astype(np.uint8)


class FieldOverlays:
    """What the operator put inside the field of one clip; drawn the same on every frame of the clip."""

    def __init__(self, rng: np.random.Generator, disp: S.Display, mask: np.ndarray):
        self.disp, self.mask = disp, mask
        u = rng.uniform
        ys, xs = np.nonzero(mask)
        self.empty = xs.size < 100
        if self.empty:
            return
        self.seed = int(rng.integers(0, 2**31))
        half = disp.half_angle_deg
        self.doppler = None
        if u() < 0.3:  # colour-Doppler region of interest: a sector-annulus inside the field
            a0 = u(-half, half * 0.3)
            self.doppler = (a0, min(a0 + u(15, 40), half), disp.r_min_mm + u(0.05, 0.5) * (disp.r_max_mm - disp.r_min_mm),
                            u(0.25, 0.5) * (disp.r_max_mm - disp.r_min_mm))
        self.callipers = None
        if u() < 0.3:
            i, j = rng.integers(0, xs.size, 2)
            self.callipers = ((int(xs[i]), int(ys[i])), (int(xs[j]), int(ys[j])))
        self.mmode = float(u(-half * 0.8, half * 0.8)) if u() < 0.15 else None
        self.text = None
        if u() < 0.25:
            k = rng.integers(0, xs.size)
            self.text = ((int(xs[k]), int(ys[k])), f"{u(0.5, 4.5):.1f} cm" if u() < 0.6 else f"{int(u(10, 99))}%")

    def _polar_to_px(self, ang_deg: float, r_mm: float) -> tuple[int, int]:
        d = self.disp
        a = math.radians(ang_deg)
        return (int(round(d.apex_x + math.sin(a) * r_mm * d.px_per_mm)),
                int(round(d.apex_y + math.cos(a) * r_mm * d.px_per_mm)))

    def draw(self, frame: np.ndarray) -> np.ndarray:
        """``frame``: (H, W, 3) uint8 RGB, modified and returned."""
        if self.empty:
            return frame
        rng = np.random.default_rng(self.seed)
        d = self.disp
        h, w = frame.shape[:2]
        white = (235, 235, 235)
        if self.doppler is not None:
            a0, a1, r0, dr = self.doppler
            yy, xx = np.mgrid[0:h, 0:w]
            dx, dz = (xx + 0.5 - d.apex_x) / d.px_per_mm, (yy + 0.5 - d.apex_y) / d.px_per_mm
            r, th = np.hypot(dx, dz), np.degrees(np.arctan2(dx, dz))
            roi = (r >= r0) & (r <= r0 + dr) & (th >= a0) & (th <= a1) & self.mask
            # flow colour over the blood (dark pixels), in blobs: red towards, blue away, aliasing to yellow/cyan
            noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 6.0)
            noise /= noise.std() + 1e-6
            grey = frame[:, :, 0].astype(np.float32)
            flow = roi & (grey < 30) & (np.abs(noise) > rng.uniform(0.8, 1.5))
            v = np.clip(noise, -2.5, 2.5) / 2.5
            red = np.stack([120 + 135 * np.abs(v), 40 + 160 * np.clip(np.abs(v) - 0.6, 0, 1), 20 * np.ones_like(v)], -1)
            blue = np.stack([20 * np.ones_like(v), 60 + 160 * np.clip(np.abs(v) - 0.6, 0, 1), 120 + 135 * np.abs(v)], -1)
            col = np.where((v > 0)[..., None], red, blue)
            frame[flow] = np.clip(col[flow], 0, 255).astype(np.uint8)
            pts = [self._polar_to_px(a, r0) for a in np.linspace(a0, a1, 12)] + \
                  [self._polar_to_px(a, r0 + dr) for a in np.linspace(a1, a0, 12)]
            cv2.polylines(frame, [np.array(pts, np.int32)], True, white, 1, cv2.LINE_AA)
        if self.callipers is not None:
            p, q = self.callipers
            for c in (p, q):
                cv2.drawMarker(frame, c, (255, 255, 120), cv2.MARKER_CROSS, 9, 1)
            n = max(int(math.hypot(q[0] - p[0], q[1] - p[1]) / 6), 1)
            for k in range(0, n, 2):
                a, b = k / n, min((k + 1) / n, 1.0)
                cv2.line(frame, (int(p[0] + (q[0] - p[0]) * a), int(p[1] + (q[1] - p[1]) * a)),
                         (int(p[0] + (q[0] - p[0]) * b), int(p[1] + (q[1] - p[1]) * b)), (200, 200, 120), 1)
        if self.mmode is not None:
            p0 = self._polar_to_px(self.mmode, d.r_min_mm)
            p1 = self._polar_to_px(self.mmode, d.r_max_mm)
            n = 40
            for k in range(0, n, 2):
                a, b = k / n, (k + 1) / n
                cv2.line(frame, (int(p0[0] + (p1[0] - p0[0]) * a), int(p0[1] + (p1[1] - p0[1]) * a)),
                         (int(p0[0] + (p1[0] - p0[0]) * b), int(p0[1] + (p1[1] - p0[1]) * b)), white, 1)
        if self.text is not None:
            (x, y), s = self.text
            cv2.putText(frame, s, (min(x, w - 60), max(y, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (240, 240, 160), 1,
                        cv2.LINE_AA)
        return frame


__all__ = ["acquisition", "zoom_window", "grey_map", "smooth_polar", "resolution", "tint", "FieldOverlays",
           "ZOOM_SHARE"]


def render_clip(heart, plan, rng: np.random.Generator, heart_rate: int):
    """:func:`echoavc.synth.cohort.render_clip` for the realistic anatomy (same outputs, same truth rules)."""
    from echoavc.synth import anatomy as A
    from echoavc.synth import cohort as C
    from echoavc.synth import realistic as R
    from echoavc.synth import screen as V

    view = plan.view if plan.view != "psax_mid" else f"psax_{plan.level or 'mid'}"
    acq = acquisition(rng, plan.view)
    layout = V.LAYOUTS[plan.layout]
    pose = C._pose(rng, plan.view, heart, acq.depth_mm)
    if view == "psax_av" and plan.zoomed:
        # zoomed acquisitions: narrower sectors, the root filling about half of the field
        # (and, as scanners do, a higher frequency focused on the root: finer speckle at the zoomed scale)
        acq = replace(acq, sector_deg=float(rng.uniform(30, 60)), n_lines=int(rng.integers(120, 180)),
                      freq_mhz=float(rng.uniform(2.6, 3.6)), focus_mm=pose.z_mm,
                      pulse_sigma_cycles=float(rng.uniform(1.0, 1.6)))
    half = acq.sector_deg / 2
    zoom = zoom_window(rng, pose.z_mm, pose.x_mm, acq.depth_mm) if plan.zoomed else None
    disp = V.sector_display(layout, acq.depth_mm, half, zoom)
    if zoom is not None and rng.uniform() < 0.5:
        # a zoomed sector segment instead of a box, where the segment fits on the screen
        reach = disp.r_max_mm * math.sin(math.radians(half)) * disp.px_per_mm
        if reach + 8 < min(disp.apex_x, disp.width - disp.apex_x):
            disp = replace(disp, clip_box=None)
    look = R.sample_look(rng)
    look_seed = int(rng.integers(0, 2**31))
    grid = S.polar_grid(acq)
    x0, sh, sw = A.scene_geometry(acq.depth_mm, half, 0.3)
    tex = A.texture((sh, sw), 0.3, rng, sigma=look.texture_sigma, grain_mm=look.texture_grain_mm)
    conv = S.ScanConverter(S.envelope_ranges(grid, acq), grid.th_rad, disp)
    smooth_rng = np.random.default_rng(int(rng.integers(0, 2**31)))
    grey_seed = int(rng.integers(0, 2**31))
    overlays = FieldOverlays(rng, disp, conv.mask)
    post_seed = int(rng.integers(0, 2**31))
    start = float(rng.uniform(0, 1))
    interval_ms = 60000.0 / heart_rate / max(plan.n_frames, 1)
    corr = acq.frame_correlation ** (interval_ms / C.CORRELATION_INTERVAL_MS)
    scat = None
    frames, truth = [], []
    for i in range(plan.n_frames):
        phase = (start + i / plan.n_frames) % 1.0
        jit = A.Pose(pose.x_mm + float(rng.normal(0, 0.6)), pose.z_mm + float(rng.normal(0, 0.6)),
                     pose.rot_deg + float(rng.normal(0, 0.8)), pose.scale)
        scene = R.render(view, heart, jit, phase, acq.depth_mm, half, rng, look, look_seed, tex=tex)
        echo_p = S.sample_polar(scene.echo, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        att_p = S.sample_polar(scene.atten, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        scat = S.speckle_field(echo_p.shape, rng, scat, corr)
        beam = S.beamform(echo_p, att_p, grid, acq, rng, scatterers=scat)
        polar = smooth_polar(S.log_compress(beam.envelope, acq), np.random.default_rng(smooth_rng.integers(2**31)))
        img = conv(grey_map(polar, np.random.default_rng(grey_seed)))
        gray = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        post = np.random.default_rng(post_seed)  # the same for every frame of the clip
        frame = tint(resolution(np.repeat(gray[:, :, None], 3, axis=2), post), post)
        frame[~conv.mask] = 0
        overlays.draw(frame)
        box = C.valve_box(scene, grid, acq, conv, disp, jit) if scene.has_valve else None
        nodules = C.visible_nodules(scene, disp, conv)
        frames.append(frame)
        truth.append({"phase": phase, "box": box, "nodules": nodules})
    return np.stack(frames), truth, disp, acq, conv
