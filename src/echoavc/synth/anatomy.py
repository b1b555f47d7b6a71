"""Echogenicity maps of the heart, per view, with aortic valve calcification.

A patient is a :class:`Heart`: sizes, shapes, a smooth random deformation of
the whole heart, bright normal structures (fibrous annulus, specular walls,
pericardium) and, when calcified, nodules on cusps, commissures and annulus.
:func:`render` draws one view of it at one moment of the cardiac cycle into a
:class:`Scene`: Cartesian maps in probe coordinates (x lateral, z depth, mm):

- ``echo``: backscatter power relative to myocardium (blood ~0.01, myocardium
  1, valve and fibrous tissue a few, pericardium ~10, calcium tens);
- ``atten``: attenuation, dB/mm/MHz (tissue 0.05, blood 0.015, calcium 0.3-1.2);
- ``valve``: mask of the aortic valve (root, cusps, annulus, nodules), the
  thing an annotator boxes.

Shapes are drawn as deformed polygons, so no two hearts share a template.
Pure numpy; randomness only from the Generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

VIEWS = ("psax_av", "psax_mid", "plax", "a4c")
#: Views in which the aortic valve is visible (and boxed in the ground truth).
VALVE_VIEWS = ("psax_av", "plax")

BLOOD = 0.012
TISSUE_ATTEN = 0.05
BLOOD_ATTEN = 0.015
#: Backscatter of a grade-1 nodule (log-uniform), relative to myocardium: 24-160 times the leaflet's
#: (2.5-6.25 at grade 1). A nodule this small (smaller than the beam) is diluted by the point-spread
#: function, so on screen it peaks about 11 dB (median; 25-75%: 8-14 dB) above the 90th percentile of the
#: leaflet's speckle, against 13 dB for grade 2's brightest nodule (docs/synth.md, "Grade 1").
GRADE1_ECHO = (150.0, 400.0)
_SHIFT = 3  # cv2 sub-pixel bits
_SCALE = 1 << _SHIFT


# ----------------------------------------------------------------------------- geometry helpers


def arc(cx: float, cy: float, ax: float, ay: float, a0: float, a1: float, rot: float = 0.0,
        step: float = 4.0) -> np.ndarray:
    """Points on an ellipse (angles in degrees, v axis pointing down, 0 deg = +u)."""
    n = max(int(abs(a1 - a0) / step), 2) + 1
    t = np.radians(np.linspace(a0, a1, n))
    pts = np.stack([ax * np.cos(t), ay * np.sin(t)], axis=1)
    if rot:
        c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
        pts = pts @ np.array([[c, s], [-s, c]])
    return pts + (cx, cy)


def bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def blob(cx: float, cy: float, r: float, rng: np.random.Generator, irregular: float = 0.3,
         n: int = 14) -> np.ndarray:
    """An irregular closed outline of mean radius r (calcified nodules are not circles)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = r * (1 + irregular * rng.uniform(-1, 1, n))
    rad = np.convolve(np.r_[rad[-1], rad, rad[0]], [0.25, 0.5, 0.25], mode="valid")
    return np.stack([cx + rad * np.cos(t), cy + rad * 0.85 * np.sin(t)], axis=1)


@dataclass(frozen=True)
class Warp:
    """Smooth random deformation of heart coordinates (a few Fourier modes)."""

    k: np.ndarray  #: (m, 2) wave vectors, rad/mm
    phase: np.ndarray  #: (m,)
    amp: np.ndarray  #: (m, 2) displacement amplitudes, mm

    @classmethod
    def sample(cls, rng: np.random.Generator, amplitude_mm: float = 3.0, modes: int = 6) -> "Warp":
        wavelength = rng.uniform(45, 140, modes)
        ang = rng.uniform(0, 2 * np.pi, modes)
        k = np.stack([np.cos(ang), np.sin(ang)], axis=1) * (2 * np.pi / wavelength)[:, None]
        amp = rng.normal(0, amplitude_mm / math.sqrt(modes / 2), (modes, 2))
        return cls(k=k, phase=rng.uniform(0, 2 * np.pi, modes), amp=amp)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        s = np.sin(pts @ self.k.T + self.phase)  # (n, m)
        return pts + s @ self.amp


@dataclass(frozen=True)
class Pose:
    """Heart coordinates (u right, v down, mm, origin at the view's centre) -> probe coordinates."""

    x_mm: float
    z_mm: float
    rot_deg: float = 0.0
    scale: float = 1.0

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        c, s = math.cos(math.radians(self.rot_deg)), math.sin(math.radians(self.rot_deg))
        p = pts * self.scale
        return np.stack([c * p[:, 0] - s * p[:, 1] + self.x_mm, s * p[:, 0] + c * p[:, 1] + self.z_mm], axis=1)


# ----------------------------------------------------------------------------- the patient


@dataclass(frozen=True)
class Nodule:
    """A calcified nodule on the aortic valve."""

    site: str  #: "cusp", "commissure" or "annulus"
    index: int  #: cusp or commissure number (0-2)
    s: float  #: position along the cusp's free edge (cusp) or angle offset in degrees (annulus)
    radius_mm: float
    echo: float  #: backscatter power relative to myocardium
    atten: float  #: dB/mm/MHz
    offset_mm: float = 0.0  #: distance off the leaflet line, into the cusp belly


@dataclass(frozen=True)
class Heart:
    """One patient's heart: everything that stays the same between frames and exams."""

    grade: int
    scale: float
    ao_r: float  #: aortic root radius, mm
    ao_wall: float
    ao_wall_echo: float
    cusp_rot: float  #: rotation of the commissures, degrees
    commissure_jitter: tuple[float, float, float]
    leaflet_mm: float
    leaflet_echo: float
    annulus_arcs: tuple[tuple[float, float, float], ...]  #: (start deg, span deg, echo): fibrous bright arcs
    la: tuple[float, float, float, float]  #: centre u, v, half axes
    ra: tuple[float, float, float, float]
    rvot_w: float
    pa_angle: float
    peri_echo: float
    peri_mm: float
    specular_echo: float  #: the bright posterior aortic wall / anterior LA wall junction
    lv_r: float
    lv_wall: float
    nodules: tuple[Nodule, ...]
    warp: Warp = field(repr=False)

    @classmethod
    def sample(cls, rng: np.random.Generator, grade: int) -> "Heart":
        u = rng.uniform
        arcs = tuple((float(u(0, 360)), float(u(25, 80)), float(np.exp(u(np.log(12), np.log(150)))))
                     for _ in range(int(rng.integers(1, 4))))
        thick = (0.0, 0.25, 0.6, 1.1)[grade]
        echo_gain = (1.0, 1.25, 1.7, 2.4)[grade]
        return cls(
            grade=grade,
            scale=float(u(0.88, 1.12)),
            ao_r=float(u(10.0, 13.5)),
            ao_wall=float(u(1.5, 2.6)),
            ao_wall_echo=float(u(2.5, 8.0)),
            cusp_rot=float(u(-25, 25)),
            commissure_jitter=tuple(float(x) for x in rng.uniform(-12, 12, 3)),
            leaflet_mm=float(u(0.9, 1.4)) + thick,
            leaflet_echo=float(u(2.0, 5.0)) * echo_gain,
            annulus_arcs=arcs,
            la=(float(u(-3, 6)), float(u(15, 20)), float(u(19, 27)), float(u(12, 17))),
            ra=(float(u(-30, -24)), float(u(4, 12)), float(u(12, 17)), float(u(11, 16))),
            rvot_w=float(u(10, 16)),
            pa_angle=float(u(-40, -10)),
            peri_echo=float(np.exp(u(np.log(60), np.log(500)))),
            peri_mm=float(u(1.6, 3.5)),
            specular_echo=float(np.exp(u(np.log(15), np.log(150)))),
            lv_r=float(u(18, 25)),
            lv_wall=float(u(8, 12)),
            nodules=sample_nodules(rng, grade),
            warp=Warp.sample(rng, amplitude_mm=float(u(1.5, 4.0))),
        )

    def progressed(self, rng: np.random.Generator, grade: int) -> "Heart":
        """The same heart later, at ``grade`` (>= the current one): nodules kept, grown and added."""
        if grade <= self.grade:
            return self
        old = [Nodule(n.site, n.index, n.s, n.radius_mm * float(rng.uniform(1.1, 1.4)),
                      n.echo * float(rng.uniform(1.2, 2.0)), n.atten * float(rng.uniform(1.2, 1.8)),
                      n.offset_mm) for n in self.nodules]
        extra = list(sample_nodules(rng, grade))[len(old):]
        thick = (0.0, 0.25, 0.6, 1.1)
        gain = (1.0, 1.25, 1.7, 2.4)
        return Heart(**{**self.__dict__, "grade": grade, "nodules": tuple(old + extra),
                        "leaflet_mm": self.leaflet_mm + thick[grade] - thick[self.grade],
                        "leaflet_echo": self.leaflet_echo * gain[grade] / gain[self.grade]})


def sample_nodules(rng: np.random.Generator, grade: int) -> tuple[Nodule, ...]:
    """Number, size, brightness and position of nodules for a grade.

    Grade 1 is mild: one small spot (radius 0.9-1.5 mm) that is clearly more
    echogenic than the cusp it sits on (24-160 times the leaflet's backscatter;
    on screen about 11 dB above the leaflet's bright speckle, median), as a
    reader needs to grade it, yet mostly below the normal bright structures
    around the valve (annulus arcs, specular wall, pericardium: the spot is the
    brightest thing in the valve box in about a fifth of frames), with a mild shadow.
    Grade 3 has many large nodules, including the annulus, with dense shadows.
    See docs/synth.md, "Grade 1", for the measured contrasts.
    """
    if grade <= 0:
        return ()
    u = rng.uniform
    count = {1: 1, 2: int(rng.integers(2, 4)), 3: int(rng.integers(4, 8))}[grade]
    radius = {1: (0.9, 1.5), 2: (1.3, 2.4), 3: (1.8, 3.4)}[grade]
    echo = {1: GRADE1_ECHO, 2: (80.0, 600.0), 3: (300.0, 3000.0)}[grade]
    atten = {1: (0.3, 0.6), 2: (0.35, 0.8), 3: (0.5, 1.2)}[grade]
    sites = {1: ([0.7, 0.3, 0.0]), 2: ([0.6, 0.3, 0.1]), 3: ([0.45, 0.25, 0.3])}[grade]
    out = []
    for _ in range(count):
        site = str(rng.choice(["cusp", "commissure", "annulus"], p=sites))
        idx = int(rng.integers(0, 3))
        s = float(u(0.2, 0.8)) if site == "cusp" else float(u(-50, 50)) if site == "annulus" else 0.0
        e = float(np.exp(u(np.log(echo[0]), np.log(echo[1]))))
        out.append(Nodule(site, idx, s, float(u(*radius)), e, float(u(*atten)),
                          float(u(0.0, 2.0)) if site == "cusp" else 0.0))
    return tuple(out)


# ----------------------------------------------------------------------------- the scene


@dataclass
class Scene:
    """Maps in probe coordinates: row i, column j is the cell centred at
    x = x0 + (j + 0.5) res, z = z0 + (i + 0.5) res."""

    echo: np.ndarray
    atten: np.ndarray
    valve: np.ndarray
    x0_mm: float
    z0_mm: float
    res_mm: float
    nodules: list[tuple[float, float, float]] = field(default_factory=list)  #: (x, z, r) mm, probe coords
    has_valve: bool = False


def scene_geometry(depth_mm: float, half_angle_deg: float, res_mm: float) -> tuple[float, int, int]:
    """(x0 mm, height px, width px) of the scene that covers a sector."""
    half_w = depth_mm * math.sin(math.radians(min(half_angle_deg, 89.0))) + 5.0
    return -half_w, int(math.ceil((depth_mm + 5.0) / res_mm)), int(math.ceil(2 * half_w / res_mm))


class Canvas:
    def __init__(self, depth_mm: float, half_angle_deg: float, res_mm: float, pose: Pose, warp: Warp,
                 background: float):
        x0, h, w = scene_geometry(depth_mm, half_angle_deg, res_mm)
        self.x0, self.z0, self.res = x0, 0.0, res_mm
        self.echo = np.full((h, w), background, np.float32)
        self.atten = np.full((h, w), TISSUE_ATTEN, np.float32)
        self.valve = np.zeros((h, w), np.uint8)
        self.pose, self.warp = pose, warp

    def probe(self, pts) -> np.ndarray:
        """Heart coordinates -> probe coordinates (deformed, posed)."""
        return self.pose(self.warp(np.asarray(pts, dtype=np.float64).reshape(-1, 2)))

    def _px(self, pts) -> np.ndarray:
        p = self.probe(pts)
        px = np.stack([(p[:, 0] - self.x0) / self.res - 0.5, (p[:, 1] - self.z0) / self.res - 0.5], axis=1)
        return np.round(px * _SCALE).astype(np.int32)

    def fill(self, pts, echo: float, atten: float | None = None, valve: int | None = None) -> None:
        poly = [self._px(pts)]
        cv2.fillPoly(self.echo, poly, float(echo), cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.atten, poly, float(TISSUE_ATTEN if atten is None else atten), cv2.LINE_8, _SHIFT)
        if valve is not None:
            cv2.fillPoly(self.valve, poly, int(valve), cv2.LINE_8, _SHIFT)

    def line(self, pts, width_mm: float, echo: float, atten: float | None = None, valve: int | None = None,
             closed: bool = False) -> None:
        poly = [self._px(pts)]
        t = max(int(round(width_mm * self.pose.scale / self.res)), 1)
        cv2.polylines(self.echo, poly, closed, float(echo), t, cv2.LINE_8, _SHIFT)
        cv2.polylines(self.atten, poly, closed, float(TISSUE_ATTEN if atten is None else atten), t, cv2.LINE_8, _SHIFT)
        if valve is not None:
            cv2.polylines(self.valve, poly, closed, int(valve), t, cv2.LINE_8, _SHIFT)

    def blood(self, pts) -> None:
        self.fill(pts, BLOOD, BLOOD_ATTEN)

    def scene(self) -> Scene:
        return Scene(self.echo, self.atten, self.valve, self.x0, self.z0, self.res)


def valve_opening(phase: float) -> float:
    """Aortic valve opening (0 closed, 1 fully open) over the cycle (phase 0 = R wave)."""
    return float(np.clip(min((phase - 0.06) / 0.05, (0.40 - phase) / 0.06, 1.0), 0.0, 1.0))


def cardiac_phase_name(phase: float) -> str:
    """'systole' while the ventricles eject (aortic valve open or opening), else 'diastole'."""
    return "systole" if 0.06 <= phase < 0.40 else "diastole"


#: the aortic valve's state per frame in ``frames.csv`` (column ``valve_phase``); older cohorts have
#: ``cardiac_phase`` with "diastole" (the same frames as "closed": isovolumic contraction included) and "systole"
OLD_PHASE_NAMES = {"diastole": "closed", "systole": "open"}


def valve_phase_name(phase: float) -> str:
    """'open' while the aortic valve opens, is open or closes (ejection), else 'closed' (isovolumic contraction,
    relaxation and filling): the frames the paper picked are the closed ones."""
    return OLD_PHASE_NAMES[cardiac_phase_name(phase)]


def valve_phase_column(frames):
    """The ``valve_phase`` column of a cohort's frames table (a DataFrame), also from an older ``cardiac_phase``."""
    if "valve_phase" in frames.columns:
        return frames["valve_phase"]
    return frames["cardiac_phase"].map(OLD_PHASE_NAMES)


def contraction(phase: float) -> float:
    """Ventricular contraction 0..1 (max at end-systole)."""
    return float(np.clip(math.sin(math.pi * np.clip((phase - 0.03) / 0.5, 0, 1)), 0, 1))


# ----------------------------------------------------------------------------- rendering (views: synth/views.py)


def texture(shape: tuple[int, int], res_mm: float, rng: np.random.Generator, sigma: float = 0.45,
            grain_mm: float = 3.0) -> np.ndarray:
    """Smooth lognormal tissue heterogeneity (the mottled look of myocardium), mean about 1."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for g, wgt in ((grain_mm, 0.7), (grain_mm * 5, 0.7)):
        step = max(g / res_mm, 1.0)
        small = rng.standard_normal((int(h / step) + 2, int(w / step) + 2)).astype(np.float32)
        out += wgt * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    out /= math.sqrt(0.98)
    return np.exp(sigma * out - 0.5 * sigma**2).astype(np.float32)


def render(view: str, heart: Heart, pose: Pose, phase: float, depth_mm: float, half_angle_deg: float,
           rng: np.random.Generator, res_mm: float = 0.3, tex: np.ndarray | None = None) -> Scene:
    """Draw ``view`` of ``heart`` at ``phase`` (0..1 of the cycle, 0 = R wave) in probe coordinates.

    ``rng`` draws only per-frame details (nodule outlines); pass a generator
    seeded the same way to reproduce a frame. ``tex``: heterogeneity field of
    the scene's shape (kept across a clip so tissue texture does not flicker).
    """
    from echoavc.synth.views import VIEW_DRAWERS, common_background

    if view not in VIEW_DRAWERS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    c = Canvas(depth_mm, half_angle_deg, res_mm, pose, heart.warp, background=0.15)
    common_background(c, rng, depth_mm)
    nodules = VIEW_DRAWERS[view](c, heart, phase, rng)
    scene = c.scene()
    # soften the drawn edges (tissue boundaries are not pixel-sharp)
    sig = 0.5 / res_mm
    scene.echo = cv2.GaussianBlur(scene.echo, (0, 0), sig)
    if tex is not None:
        is_blood = scene.echo <= BLOOD * 1.01
        scene.echo *= np.where(is_blood, np.sqrt(tex), tex)
    scene.nodules = nodules
    scene.has_valve = view in VALVE_VIEWS
    return scene
