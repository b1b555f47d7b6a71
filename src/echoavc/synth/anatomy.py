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


class _Canvas:
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


def contraction(phase: float) -> float:
    """Ventricular contraction 0..1 (max at end-systole)."""
    return float(np.clip(math.sin(math.pi * np.clip((phase - 0.03) / 0.5, 0, 1)), 0, 1))


# ----------------------------------------------------------------------------- views


def _common_background(c: _Canvas, rng: np.random.Generator, depth_mm: float) -> None:
    """Chest wall layers in the near field (probe coordinates, not posed)."""
    h, w = c.echo.shape
    z = (np.arange(h) + 0.5) * c.res
    wall = float(rng.uniform(8, 16))
    prof = np.where(z < wall, 1.0 + 2.5 * np.abs(np.sin(z / wall * np.pi * rng.uniform(2, 4))), 0.0)
    c.echo[:] = np.maximum(c.echo, prof[:, None].astype(np.float32))


def _psax_av(c: _Canvas, heart: Heart, phase: float, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    R = heart.ao_r
    la, ra = heart.la, heart.ra
    # heart envelope (myocardium, atrial walls, fat) and posterior pericardium
    c.fill(arc(0, 6, 64, 50, 0, 360), 1.0)
    c.line(arc(0, 6, 64, 50, 15, 165), heart.peri_mm, heart.peri_echo)
    c.line(arc(0, 6, 62, 48, 200, 340), heart.peri_mm * 0.7, heart.peri_echo * 0.3)
    # descending aorta behind the left atrium (outside the pericardium)
    c.blood(arc(14, la[1] + la[3] + 22, 8, 7, 0, 360))
    c.line(arc(14, la[1] + la[3] + 22, 8.5, 7.5, 0, 360), 1.2, 4.0, closed=True)
    # atria
    c.blood(arc(la[0], la[1] + R * 0.6, la[2], la[3], 0, 360))
    c.blood(arc(ra[0] - R * 0.4, ra[1] + R * 0.3, ra[2], ra[3], 0, 360))
    # interatrial septum: thin, moderately bright
    sep0 = np.array([ra[0] - R * 0.4 + ra[2] * 0.7, ra[1] + R * 0.3 + ra[3] * 0.7])
    c.line(np.array([[-R * 0.7, R * 0.9], sep0]), 2.0, 1.8)
    # RVOT wrapping over the front of the aorta, into the pulmonary artery
    ro, rw = R + 4.0, heart.rvot_w
    outer = arc(0, 0, ro + rw, ro + rw * 0.9, 165, 345)
    inner = arc(0, 0, ro, ro, 345, 165, step=-4)
    c.blood(np.vstack([outer, inner]))
    pa_dir = np.radians(heart.pa_angle)
    start = np.array([math.cos(np.radians(345)), math.sin(np.radians(345))]) * (ro + rw / 2)
    tube_dir = np.array([math.cos(pa_dir), math.sin(pa_dir) * -1.0 + 0.9])
    tube_dir /= np.linalg.norm(tube_dir)
    normal = np.array([-tube_dir[1], tube_dir[0]])
    end = start + tube_dir * 26
    c.blood(np.array([start + normal * rw / 2, end + normal * rw / 2.2, end - normal * rw / 2.2, start - normal * rw / 2]))
    # pulmonary valve: two thin leaflets across the tube
    pv = start + tube_dir * 8
    op = valve_opening(phase)
    for sgn in (1, -1):
        hinge = pv + sgn * normal * rw / 2
        tip = pv + sgn * normal * rw * 0.05 * (1 - op) + tube_dir * (op * rw * 0.45) + sgn * normal * op * rw * 0.35
        c.line(np.array([hinge, tip]), 1.0, 2.5)
    # tricuspid leaflets between RA and RV (left of the aorta)
    tv = np.array([ra[0] - R * 0.4 + 2, ra[1] + R * 0.3 - ra[3]])
    c.line(np.array([tv + (-4, 0), tv + (-2, -7 * (1 - op) - 3)]), 1.0, 2.0)
    # the aortic root: blood inside a bright wall, with the fibrous annulus
    return _aortic_valve_psax(c, heart, phase, rng)


def _commissures(heart: Heart) -> np.ndarray:
    base = np.array([-90.0 + 60, 30.0 + 60, 150.0 + 60])  # inverted-Y ("Mercedes-Benz") orientation
    return base + heart.cusp_rot + np.array(heart.commissure_jitter)


def _aortic_valve_psax(c: _Canvas, heart: Heart, phase: float, rng: np.random.Generator):
    R, wall = heart.ao_r, heart.ao_wall
    c.fill(arc(0, 0, R + wall, R + wall, 0, 360), heart.ao_wall_echo, valve=1)
    c.fill(arc(0, 0, R, R, 0, 360), BLOOD, BLOOD_ATTEN, valve=1)
    for a0, span, echo in heart.annulus_arcs:
        c.line(arc(0, 0, R + wall * 0.5, R + wall * 0.5, a0, a0 + span), wall * 0.9, echo, valve=1)
    # bright specular junction of the posterior aortic wall and the anterior LA wall
    c.line(arc(0, 0, R + wall * 0.6, R + wall * 0.6, 55, 125), wall * 0.8, heart.specular_echo, valve=1)
    op = valve_opening(phase)
    comm = np.radians(_commissures(heart))
    cpts = np.stack([np.cos(comm), np.sin(comm)], axis=1) * R
    curves = []
    for k in range(3):
        a, b = cpts[k], cpts[(k + 1) % 3]
        mid = (comm[k] + _ang_between(comm[k], comm[(k + 1) % 3]) / 2)
        rho = 0.72 * op
        ctrl_r = 2 * rho * R - 0.5 * (np.linalg.norm((a + b) / 2) * (rho > 0))  # bow to the wall when open
        m = np.array([math.cos(mid), math.sin(mid)]) * (rho * R)
        if op <= 0:
            curve = np.vstack([bezier(a, a * 0.5, m, 12), bezier(m, b * 0.5, b, 12)])
        else:
            ctrl = np.array([math.cos(mid), math.sin(mid)]) * max(ctrl_r, rho * R)
            curve = bezier(a, ctrl, b, 25)
        curves.append(curve)
        c.line(curve, heart.leaflet_mm, heart.leaflet_echo, valve=1)
    # cusp bellies: faint when closed
    nodules_mm = []
    for n in heart.nodules:
        if n.site == "cusp":
            curve = curves[n.index]
            i = int(np.clip(round(n.s * (len(curve) - 1)), 0, len(curve) - 1))
            p = curve[i]
            mid = comm[n.index] + _ang_between(comm[n.index], comm[(n.index + 1) % 3]) / 2
            p = p + np.array([math.cos(mid), math.sin(mid)]) * n.offset_mm * (1 - 0.8 * op)
        elif n.site == "commissure":
            p = cpts[n.index] * 0.95
        else:
            ang = comm[n.index] + math.radians(n.s)
            p = np.array([math.cos(ang), math.sin(ang)]) * (R + wall * 0.4)
        nodules_mm.append(_draw_nodule(c, p, n, rng))
    return nodules_mm


def _ang_between(a: float, b: float) -> float:
    d = (b - a) % (2 * np.pi)
    return d


def _draw_nodule(c: _Canvas, p: np.ndarray, n: Nodule, rng: np.random.Generator):
    # the outline is the nodule's own (seeded by its parameters), so it does not flicker between frames
    own = np.random.default_rng([int(n.radius_mm * 1e6), int(n.echo * 1e3), n.index])
    c.fill(blob(p[0], p[1], n.radius_mm, own), n.echo, n.atten, valve=1)
    q = c.probe(p)[0]
    return (float(q[0]), float(q[1]), float(n.radius_mm * c.pose.scale))


def _psax_mid(c: _Canvas, heart: Heart, phase: float, rng: np.random.Generator):
    k = contraction(phase)
    r = heart.lv_r * (1 - 0.25 * k)
    wall = heart.lv_wall * (1 + 0.35 * k)
    ro = r + wall
    c.fill(arc(0, 0, ro + 30, ro + 22, 0, 360), 0.8)
    # right ventricle: crescent on the front-left
    c.blood(np.vstack([arc(-4, -2, ro + 14, ro + 10, 160, 290), arc(-2, 0, ro + 1.5, ro + 1.5, 290, 160, step=-4)]))
    c.fill(arc(0, 0, ro, ro, 0, 360), 1.0)
    c.blood(arc(0, 0, r, r * 0.95, 0, 360))
    # papillary muscles and trabeculae
    for ang in (50 + rng.uniform(-8, 8), 135 + rng.uniform(-8, 8)):
        a = math.radians(ang)
        c.fill(blob(math.cos(a) * r * 0.7, math.sin(a) * r * 0.7, 4.5 + 2 * k, rng, 0.2), 1.2)
    # endocardial border slightly brighter, pericardium bright behind
    c.line(arc(0, 0, r, r * 0.95, 0, 360), 1.0, 1.8, closed=True)
    c.line(arc(0, 0, ro + 1, ro + 1, 20, 160), heart.peri_mm, heart.peri_echo)
    c.line(arc(0, 0, ro + 16, ro + 12, 200, 300), heart.peri_mm * 0.8, heart.peri_echo * 0.3)
    return []


def _plax(c: _Canvas, heart: Heart, phase: float, rng: np.random.Generator):
    R, wall = heart.ao_r, heart.ao_wall
    k = contraction(phase)
    op = valve_opening(phase)
    lvr = heart.lv_r * (1 - 0.2 * k) * 0.8
    # envelope
    c.fill(np.vstack([arc(-40, 0, 70, 42, 90, 270), arc(30, 5, 45, 40, 270, 450)]), 1.0)
    # right ventricle (front), septum, left ventricle
    c.blood(arc(-30, -R - 14, 48, 8, 0, 360, rot=-6))
    c.blood(arc(-36, 4, 40, lvr, 0, 360, rot=-6))
    # aortic root (tube to the right) and left atrium behind it
    c.fill(np.array([[-4, -R - wall], [48, -R - wall - 2], [48, R + wall + 2], [-4, R + wall]]), heart.ao_wall_echo)
    c.blood(np.array([[-6, -R], [50, -R - 2], [50, R + 2], [-6, R]]))
    c.blood(arc(22, R + heart.la[3] + 5, heart.la[2] * 0.9, heart.la[3], 0, 360))
    # mitral valve between LV and LA: open in diastole
    mo = 1 - contraction(phase) if cardiac_phase_name(phase) == "diastole" else 0.0
    hinge_a = np.array([-2.0, R + wall])
    c.line(np.array([hinge_a, hinge_a + (-18 * (0.4 + 0.6 * mo), 4 + 10 * (1 - mo))]), 1.3, 2.5)
    hinge_p = np.array([6.0, R + heart.la[3] * 0.9 + 10])
    c.line(np.array([hinge_p, hinge_p + (-9, -10 * (1 - mo) - 2)]), 1.3, 2.2)
    # aortic valve: two cusps hinged on the annulus
    c.fill(np.array([[-3, -R - wall], [9, -R - wall - 0.5], [9, R + wall + 0.5], [-3, R + wall]]),
           heart.ao_wall_echo, valve=1)
    c.fill(np.array([[-3, -R], [9, -R], [9, R], [-3, R]]), BLOOD, BLOOD_ATTEN, valve=1)
    for a0, span, echo in heart.annulus_arcs[:2]:
        y = -R if a0 < 180 else R
        c.line(np.array([[-2, y], [-2 + span / 10, y]]), wall, echo, valve=1)
    hinges = (np.array([0.0, -R]), np.array([0.0, R]))
    tips_closed = (np.array([-1.5, -0.6]), np.array([-1.5, 0.6]))
    tips_open = (np.array([R * 1.2, -R + 2.5]), np.array([R * 1.2, R - 2.5]))
    segs = []
    for h, tc, to in zip(hinges, tips_closed, tips_open):
        tip = tc * (1 - op) + to * op
        segs.append((h, tip))
        c.line(np.array([h, (h + tip) / 2 + (1.2 * op, 0), tip]), heart.leaflet_mm, heart.leaflet_echo, valve=1)
    c.line(np.array([[-4, -R - wall * 0.5], [12, -R - wall * 0.5]]), wall * 0.8, heart.specular_echo * 0.5, valve=1)
    nodules_mm = []
    for n in heart.nodules:
        if n.site == "cusp":
            if n.index == 2:
                continue  # the left coronary cusp is out of the long-axis plane
            h, tip = segs[n.index]
            p = h + (tip - h) * n.s
        else:
            h = hinges[n.index % 2]
            p = h * 0.92 + (n.s / 25.0 if n.site == "annulus" else 0.0, 0)
        nodules_mm.append(_draw_nodule(c, p, n, rng))
    # posterior wall and pericardium
    c.line(np.vstack([arc(-40, 0, 68, 40, 40, 150)]), heart.peri_mm, heart.peri_echo)
    c.line(np.array([[-80, R + 30], [-20, R + 34], [30, R + 2 * heart.la[3] + 12], [60, R + 2 * heart.la[3] + 8]]),
           heart.peri_mm, heart.peri_echo)
    # descending aorta behind the LA
    c.blood(arc(14, R + 2 * heart.la[3] + 22, 7, 6, 0, 360))
    return nodules_mm


def _a4c(c: _Canvas, heart: Heart, phase: float, rng: np.random.Generator):
    k = contraction(phase)
    mo = 1 - k if cardiac_phase_name(phase) == "diastole" else 0.0
    s = 1 - 0.15 * k
    c.fill(np.vstack([arc(0, -20, 46, 72, 180, 360), arc(0, -20, 46, 55, 0, 180)]), 1.0)
    # ventricles (apex up, near the probe), atria below
    c.blood(arc(15, -34, 17 * s, 40 * s, 0, 360, rot=-8))
    c.blood(arc(-19, -28, 12 * s, 31 * s, 0, 360, rot=8))
    c.blood(arc(15, 22, heart.la[2] * 0.75, heart.la[3] * 1.1, 0, 360))
    c.blood(arc(-19, 20, heart.ra[2], heart.ra[3] * 1.1, 0, 360))
    # atrioventricular valves, open in diastole
    for x0, sgn, L in ((4.0, 1, 13.0), (-7.0, -1, 11.0)):
        for side in (0, 1):
            hx = x0 + (L * 1.6 if side else 0) * sgn
            ang = math.radians(-90 + (70 if side else -70) * sgn * (0.3 + 0.7 * mo) * (1 if side else -1))
            c.line(np.array([[hx, 0], [hx + sgn * (1 if side else -1) * 2 + L * 0.8 * math.cos(ang) * 0.3,
                                        -L * (0.3 + 0.7 * mo)]]), 1.2, 2.3)
    # interatrial septum (thin, may drop out) and pericardium
    c.line(np.array([[-2, 4], [-2, 36]]), 1.5, 1.5)
    c.line(arc(0, -20, 48, 60, 15, 165), heart.peri_mm, heart.peri_echo)
    c.line(arc(0, -20, 48, 74, 200, 250), heart.peri_mm, heart.peri_echo * 0.6)
    c.line(arc(0, -20, 48, 74, 290, 340), heart.peri_mm, heart.peri_echo * 0.6)
    return []


_VIEW_FUNCS = {"psax_av": _psax_av, "psax_mid": _psax_mid, "plax": _plax, "a4c": _a4c}


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
    if view not in _VIEW_FUNCS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    c = _Canvas(depth_mm, half_angle_deg, res_mm, pose, heart.warp, background=0.15)
    _common_background(c, rng, depth_mm)
    nodules = _VIEW_FUNCS[view](c, heart, phase, rng)
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
