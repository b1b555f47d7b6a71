"""The "realistic" anatomy (``SynthSettings.anatomy = "realistic"``): tissue as thick, textured, speckled bands.

Side by side with real echo (docs/synth.md, "Sim-to-real"), the classic generator draws the heart as dark
cavities outlined by thin bright lines, with myocardium shown near black. Here:

- tissue everywhere in the field is a scatterer field of moderate echogenicity with coarse heterogeneity (the
  display puts myocardium at a mid grey, not black);
- the aortic root wall is a thick, patchy, bright band (2.5-5 mm, each stretch its own brightness), the cusps
  meet at commissures and carry small nodules of Arantius; the RVOT has a thick anterior wall; the left atrial
  wall, the interatrial septum and the pericardium are thick bright bands; calcified nodules cast shadows
  (attenuation, as before) and faint reverberation ghosts behind them;
- the short axis below the valve comes at three levels (mitral "fish mouth", papillary muscles, apex), each a
  thick grey myocardial ring: the round structures a detector must learn to tell from the aortic root;
- the parasternal long axis: a large dark LV between a thick septum and posterior wall, the root with thick
  walls to the right, the atrium under it, grey tissue all round (the classic long axis's valve and box);
- the apical view reuses the classic geometry with thick bright pericardium and walls;
- a subcostal four-chamber view (labelled ``subcostal``, view class ``other``): the liver fills the near field as a
  broad textured band with hepatic veins, the heart lies under it with its long axis across the screen.

Pure numpy: :func:`sample_look` draws a clip's tissue look, :func:`render` draws a view (a
:class:`~echoavc.synth.anatomy.Scene`, like :func:`echoavc.synth.anatomy.render`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from echoavc.synth.anatomy import (
    BLOOD, BLOOD_ATTEN, Canvas, Heart, Pose, Scene, arc, bezier, blob, cardiac_phase_name, contraction,
    valve_opening,
)
from echoavc.synth.views import (
    VIEW_DRAWERS, _ang_between, _commissures, common_background, draw_nodules, plax_aortic_valve,
)

#: Short-axis levels below the valve (all labelled ``psax_mid`` in frames.csv: no aortic valve in view).
LV_LEVELS = ("base", "mid", "apex")


@dataclass(frozen=True)
class Look:
    """One clip's tissue echogenicities (relative to myocardium = 1) and texture."""

    background: float  #: tissue around the heart
    ao_wall: float  #: aortic root wall thickness, mm
    ao_echo: float  #: its mean backscatter
    patchiness: float  #: lognormal sigma of the wall's stretch-to-stretch brightness
    peri_mm: float
    peri_echo: float
    band_echo: float  #: atrial walls, interatrial septum
    rv_wall_mm: float
    texture_sigma: float
    texture_grain_mm: float
    reverb: float  #: reverberation ghosts' share of a nodule's backscatter


def sample_look(rng: np.random.Generator) -> Look:
    u = rng.uniform
    return Look(background=float(u(0.05, 0.25)), ao_wall=float(u(2.5, 5.0)), ao_echo=float(np.exp(u(np.log(10), np.log(60)))),
                patchiness=float(u(0.3, 0.8)), peri_mm=float(u(3.0, 7.0)), peri_echo=float(np.exp(u(np.log(20), np.log(150)))),
                band_echo=float(u(3.0, 12.0)), rv_wall_mm=float(u(5.0, 9.0)), texture_sigma=float(u(0.3, 0.55)),
                texture_grain_mm=float(u(2.5, 5.0)), reverb=float(u(0.004, 0.02)))


def _band(c: Canvas, pts: np.ndarray, width: float, echo: float, sigma: float, own: np.random.Generator,
          pieces: int = 8, valve: int | None = None) -> None:
    """A thick band along ``pts`` drawn in stretches of their own brightness (real walls are patchy)."""
    n = len(pts)
    cuts = np.linspace(0, n - 1, pieces + 1).astype(int)
    for a, b in zip(cuts[:-1], cuts[1:]):
        seg = pts[a:b + 1]
        if len(seg) < 2:
            continue
        e = echo * float(np.exp(own.normal(0, sigma) - sigma**2 / 2))
        c.line(seg, width * float(own.uniform(0.75, 1.25)), e, valve=valve)


# ----------------------------------------------------------------------------- the valve level


def _psax_av(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator, look: Look, own) -> list:
    R, wall = heart.ao_r, look.ao_wall
    la, ra = heart.la, heart.ra
    op = valve_opening(phase)
    # tissue around the great vessels (atrial walls, fat, RV myocardium): textured, mid grey
    c.fill(arc(0, 4, 66, 54, 0, 360), float(own.uniform(0.4, 0.9)))
    # left atrium behind the root, its posterior wall and the pericardium: thick bright bands
    la_c = (la[0], R + wall + la[3] * 0.9 + 1.0)
    c.blood(arc(la_c[0], la_c[1], la[2], la[3], 0, 360))
    _band(c, arc(la_c[0], la_c[1], la[2] + 2.0, la[3] + 2.0, 20, 160), 2.5, look.band_echo, 0.5, own, 5)
    _band(c, arc(la_c[0], la_c[1] - 2, la[2] + 8.0, la[3] + 6.0 + look.peri_mm / 2, 15, 165), look.peri_mm,
          look.peri_echo, 0.5, own, 6)
    # right atrium to the left, the interatrial septum between the atria
    ra_c = (ra[0] - R * 0.5, ra[1] + R * 0.4)
    c.blood(arc(ra_c[0], ra_c[1], ra[2], ra[3], 0, 360))
    c.line(np.array([[-R * 0.6, R + wall * 0.8], [la_c[0] - la[2] * 0.8, la_c[1] + la[3] * 0.3]]),
           float(own.uniform(2.5, 4.5)), look.band_echo)
    # tricuspid leaflets between RA and RV
    tv = np.array([ra_c[0] + 2, ra_c[1] - ra[3]])
    c.line(np.array([tv + (-5, 0), tv + (-2, -7 * (1 - op) - 3)]), 1.4, 3.0)
    # RVOT wrapping the front of the root, with a thick anterior RV wall, into the pulmonary artery
    ro, rw = R + wall + 2.0, heart.rvot_w
    c.blood(np.vstack([arc(0, 0, ro + rw, ro + rw * 0.9, 160, 345), arc(0, 0, ro, ro, 345, 160, step=-4)]))
    _band(c, arc(0, 0, ro + rw + look.rv_wall_mm / 2, ro + rw * 0.9 + look.rv_wall_mm / 2, 160, 340),
          look.rv_wall_mm, 1.6, 0.4, own, 6)
    pa_dir = np.radians(heart.pa_angle)
    start = np.array([math.cos(np.radians(345)), math.sin(np.radians(345))]) * (ro + rw / 2)
    tube = np.array([math.cos(pa_dir), -math.sin(pa_dir) + 0.9])
    tube /= np.linalg.norm(tube)
    normal = np.array([-tube[1], tube[0]])
    end = start + tube * 28
    c.blood(np.array([start + normal * rw / 2, end + normal * rw / 2.2, end - normal * rw / 2.2, start - normal * rw / 2]))
    for sgn in (1, -1):  # pulmonary artery walls and valve
        c.line(np.array([start + sgn * normal * (rw / 2 + 1), end + sgn * normal * (rw / 2.2 + 1)]), 2.0, look.band_echo)
        hinge = start + tube * 8 + sgn * normal * rw / 2
        tip = start + tube * 8 + sgn * normal * rw * 0.05 * (1 - op) + tube * op * rw * 0.45 + sgn * normal * op * rw * 0.35
        c.line(np.array([hinge, tip]), 1.2, 3.0)
    return _aortic_root(c, heart, phase, rng, look, own)


def _aortic_root(c: Canvas, heart: Heart, phase: float, rng, look: Look, own) -> list:
    """Thick patchy wall, annulus, three cusps meeting at commissures, nodules of Arantius, calcium."""
    R, wall = heart.ao_r, look.ao_wall
    c.fill(arc(0, 0, R + wall, R + wall, 0, 360), look.ao_echo * 0.5, valve=1)
    c.fill(arc(0, 0, R, R, 0, 360), BLOOD, BLOOD_ATTEN, valve=1)
    start = float(own.uniform(0, 360))
    _band(c, arc(0, 0, R + wall / 2, R + wall / 2, start, start + 360, step=3), wall, look.ao_echo, look.patchiness,
          own, int(own.integers(8, 16)), valve=1)
    for a0, span, echo in heart.annulus_arcs:  # fibrous annulus: brighter stretches
        c.line(arc(0, 0, R + wall * 0.5, R + wall * 0.5, a0, a0 + span), wall * 0.8, look.ao_echo * (1 + echo / 50), valve=1)
    op = valve_opening(phase)
    comm = np.radians(_commissures(heart))
    cpts = np.stack([np.cos(comm), np.sin(comm)], axis=1) * R
    curves = []
    leaflet = heart.leaflet_mm * 1.3
    for k in range(3):
        a, b = cpts[k], cpts[(k + 1) % 3]
        mid = comm[k] + _ang_between(comm[k], comm[(k + 1) % 3]) / 2
        rho = 0.72 * op
        m = np.array([math.cos(mid), math.sin(mid)]) * (rho * R)
        if op <= 0:
            curve = np.vstack([bezier(a, a * 0.5, m, 12), bezier(m, b * 0.5, b, 12)])
        else:
            curve = bezier(a, np.array([math.cos(mid), math.sin(mid)]) * max(2 * rho * R - 0.5 * R, rho * R), b, 25)
        curves.append(curve)
        c.line(curve, leaflet, heart.leaflet_echo * 1.5, valve=1)
        # commissure: the cusps' attachment thickens into the wall
        c.fill(blob(a[0] * 0.93, a[1] * 0.93, 1.4, own, 0.2), look.ao_echo * 0.8, valve=1)
    if op <= 0:  # nodules of Arantius meeting at the centre in diastole (normal, not calcium)
        c.fill(blob(0, 0, float(own.uniform(0.8, 1.4)), own, 0.3), heart.leaflet_echo * 2.5, valve=1)
    return draw_nodules(c, heart.nodules, curves, comm, cpts, op, R, wall, rng)


# ----------------------------------------------------------------------------- short axis below the valve


def _psax_lv(level: str):
    def draw(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator, look: Look, own) -> list:
        k = contraction(phase)
        # the apical ring of real frames is often as large as an aortic root (real-dev's LV apex): not always small
        size = {"base": 1.05, "mid": 0.9, "apex": float(own.uniform(0.45, 0.8))}[level]
        r = heart.lv_r * size * (1 - 0.25 * k)
        wall = heart.lv_wall * (1 + 0.35 * k) * (1.15 if level == "apex" else 1.0)
        ro = r + wall
        c.fill(arc(0, 0, ro + 32, ro + 24, 0, 360), float(own.uniform(0.3, 0.8)))
        if level != "apex":  # right ventricle: crescent on the front-left, with its free wall
            c.blood(np.vstack([arc(-4, -2, ro + 14, ro + 10, 160, 290), arc(-2, 0, ro + 1.5, ro + 1.5, 290, 160, step=-4)]))
            _band(c, arc(-4, -2, ro + 14 + look.rv_wall_mm / 2, ro + 10 + look.rv_wall_mm / 2, 160, 290),
                  look.rv_wall_mm * 0.7, 1.4, 0.4, own, 4)
        c.fill(arc(0, 0, ro, ro, 0, 360), float(own.uniform(0.9, 1.8)))  # the myocardial ring: grey, thick
        if own.uniform() < 0.5:  # or bright and patchy, as real rings often are: a round "root" without cusps
            _band(c, arc(0, 0, r + wall / 2, r * 0.95 + wall / 2, 0, 360, step=3), wall * 0.8,
                  float(np.exp(own.uniform(np.log(3), np.log(25)))), look.patchiness, own, int(own.integers(8, 15)))
        c.blood(arc(0, 0, r, r * 0.95, 0, 360))
        c.line(arc(0, 0, r, r * 0.95, 0, 360), 1.2, float(own.uniform(1.5, 3.0)), closed=True)  # endocardium
        if level == "mid":
            for ang in (50 + own.uniform(-10, 10), 135 + own.uniform(-10, 10)):
                a = math.radians(ang)
                c.fill(blob(math.cos(a) * r * 0.7, math.sin(a) * r * 0.7, 4.0 + 2 * k, own, 0.2), 1.3)
        elif level == "base":  # mitral leaflets: the "fish mouth", open in diastole
            mo = 1 - k if cardiac_phase_name(phase) == "diastole" else 0.0
            gap = r * (0.08 + 0.45 * mo)
            for sgn, span in ((-1, (200, 340)), (1, (20, 160))):
                c.line(arc(0, sgn * gap * 0.5, r * 0.75, gap + r * 0.15, *span), 1.6, float(own.uniform(3, 7)))
        _band(c, arc(0, 0, ro + 1.5 + look.peri_mm / 2, ro + 1.5 + look.peri_mm / 2, 15, 165), look.peri_mm,
              look.peri_echo, 0.5, own, 5)
        return []
    return draw


# ----------------------------------------------------------------------------- long axis and apical views


def _with_root_look(heart: Heart, look: Look, **more) -> Heart:
    """``heart`` with the clip's thick, bright root wall and annulus (and ``more`` fields), for the classic drawers."""
    return replace(heart, ao_wall=look.ao_wall, ao_wall_echo=look.ao_echo,
                   annulus_arcs=tuple((a, s, look.ao_echo * (1 + e / 50)) for a, s, e in heart.annulus_arcs), **more)


def _classic_with_bands(view: str):
    """The classic geometry with thick, moderately bright pericardium, walls and annulus (not white lines)."""
    def draw(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator, look: Look, own) -> list:
        h = _with_root_look(heart, look, peri_mm=look.peri_mm * 0.7, peri_echo=look.peri_echo * 0.4,
                            specular_echo=look.ao_echo)
        return VIEW_DRAWERS[view](c, h, phase, rng)
    return draw


def _plax(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator, look: Look, own) -> list:
    """Parasternal long axis as real ones look (the view a synthetic-trained view net took for the valve level):
    grey tissue fills the field; the left ventricle is a large dark chamber, apex to the left, between a thick
    septum (under the right ventricle and its free wall) and a thick posterior wall over a bright pericardium; the
    aortic root runs to the right with thick bright walls, the left atrium under it, the mitral leaflets between
    the atrium and the ventricle. The valve (cusps, nodules, box) is the classic long axis's."""
    R, wall = heart.ao_r, look.ao_wall
    k = contraction(phase)
    op = valve_opening(phase)
    mo = 1 - k if cardiac_phase_name(phase) == "diastole" else 0.0
    la_w, la_h = heart.la[2] * 0.9, heart.la[3]
    la_c = (float(own.uniform(16, 26)), R + wall + la_h + 1.0)
    floor = la_c[1] + la_h * 0.8  # the atrioventricular groove: the LV's posterior wall meets the atrium here
    sept, pw = (float(own.uniform(7, 12)) * (1 + 0.3 * k) for _ in range(2))
    apex_x = -float(own.uniform(75, 100)) * (1 - 0.08 * k)
    top = -R - wall  # the septum's endocardium, level with the root's anterior wall
    c.fill(arc(-20, 15, 125, 85, 0, 360), float(own.uniform(0.4, 0.9)))  # chest wall, fat, myocardium around
    # right ventricle in front of the septum, under its free wall
    rv = heart.rvot_w * (1 - 0.15 * k)
    xs = np.linspace(apex_x * 0.75, 45, 12)
    lower = top - sept + 0.04 * (xs - xs[-1])
    upper = lower - rv - 3 * np.cos(xs / 40)
    c.blood(np.vstack([np.stack([xs, lower], 1), np.stack([xs, upper], 1)[::-1]]))
    _band(c, np.stack([xs, upper - look.rv_wall_mm / 2], 1), look.rv_wall_mm, 1.6, 0.4, own, 5)
    # the left ventricle: a long dark chamber from the apex to the outflow tract and the mitral valve
    cx, cz, ax, az = (apex_x + 8) / 2, (top + floor) / 2, (8 - apex_x) / 2, (floor - top) / 2
    c.blood(arc(cx, cz, ax, az, 0, 360))
    myo = float(own.uniform(1.0, 2.2))
    _band(c, np.vstack([arc(cx, cz, ax + sept / 2, az + sept / 2, 185, 268), [[0.0, top - sept / 2]]]), sept, myo,
          0.3, own, 5)  # septum, into the root's anterior wall
    _band(c, arc(cx, cz, ax + pw / 2, az + pw / 2, 95, 172), pw, myo, 0.3, own, 5)  # posterior wall
    _band(c, np.vstack([arc(cx, cz, ax + pw + look.peri_mm / 2, az + pw + look.peri_mm / 2, 90, 175)[::-1],
                        [[la_c[0], floor + la_h * 0.6 + look.peri_mm]]]), look.peri_mm, look.peri_echo * 0.6, 0.5, own, 6)
    # aortic root to the right: lumen, thick bright patchy walls
    end = float(own.uniform(45, 60))
    c.blood(np.array([[-6, -R], [end, -R - 2], [end, R + 2], [-6, R]]))
    for sgn in (-1, 1):
        _band(c, np.array([[-4, sgn * (R + wall / 2)], [end * 0.5, sgn * (R + wall / 2 + 1)], [end, sgn * (R + wall / 2 + 2)]]),
              wall, look.ao_echo, look.patchiness, own, 4)
    # left atrium under the root, its posterior wall bright
    c.blood(arc(la_c[0], la_c[1], la_w, la_h, 0, 360))
    _band(c, arc(la_c[0], la_c[1], la_w + 1.5, la_h + 1.5, 20, 160), 2.5, look.band_echo, 0.5, own, 4)
    # mitral leaflets: the anterior one hangs from the root's posterior wall, the posterior one from the groove
    hinge_a, hinge_p = np.array([-2.0, R + wall]), np.array([la_c[0] - la_w * 0.9, floor])
    c.line(np.array([hinge_a, hinge_a + (-20 * (0.4 + 0.6 * mo), 6 + 10 * (1 - mo))]), 1.6, float(own.uniform(3, 7)))
    c.line(np.array([hinge_p, hinge_p + (-8 - 4 * mo, -9 * (1 - mo) - 3)]), 1.6, float(own.uniform(3, 7)))
    # descending aorta behind the atrium
    da = (la_c[0] - 6, floor + la_h * 0.6 + look.peri_mm + 9)
    c.blood(arc(da[0], da[1], 7, 6, 0, 360))
    c.line(arc(da[0], da[1], 8, 7, 0, 360), 1.5, look.band_echo, closed=True)
    return plax_aortic_valve(c, _with_root_look(heart, look), op, rng)


def _subcostal(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator, look: Look, own) -> list:
    """Subcostal four-chamber view: the liver under the skin across the whole near field (a broad, textured band
    brighter than myocardium, with dark hepatic veins), the heart below it with its apex to the screen's right.
    Real subcostal frames fooled synthetic-trained detectors on exactly that speckled near field (docs/synth.md)."""
    pose = c.pose
    c.pose = Pose(0.0, 0.0, 0.0, 1.0)  # the liver lies in probe coordinates, under the skin, not round the heart
    c.fill(arc(pose.x_mm, pose.z_mm + 10, 120, 70, 0, 360), float(own.uniform(0.4, 0.9)))  # grey round the heart
    z_edge = pose.z_mm - 42.0 * pose.scale + float(own.uniform(-10, 6))
    xs = np.linspace(-220, 220, 23)
    edge = z_edge + 6.0 * np.sin(xs / 35.0 + float(own.uniform(0, 6.3))) + float(own.uniform(-0.2, 0.2)) * xs
    c.fill(np.vstack([[[-220.0, 0.0], [220.0, 0.0]], np.stack([xs[::-1], edge[::-1]], axis=1)]),
           float(own.uniform(1.4, 3.0)))  # brighter than myocardium, as the real liver is at cardiac settings
    for _ in range(int(own.integers(1, 4))):  # hepatic veins: dark round and oval holes in the liver
        r = float(own.uniform(2.5, 7.0))
        c.blood(arc(float(own.uniform(-35, 35)), float(own.uniform(r + 12, max(r + 13, z_edge - r - 4))), r,
                    r * float(own.uniform(0.5, 1.0)), 0, 360))
    _band(c, np.stack([xs, edge + 1.5], axis=1), float(own.uniform(2.0, 4.0)), look.peri_echo * 0.5, 0.5, own, 6)
    # the heart: the apical four-chamber geometry turned so that its apex points to the right of the screen
    c.pose = replace(pose, rot_deg=pose.rot_deg + float(own.uniform(70, 110)), scale=pose.scale * 0.85)
    _classic_with_bands("a4c")(c, heart, phase, rng, look, own)
    c.pose = pose
    return []


DRAWERS = {"psax_av": _psax_av, "plax": _plax, "a4c": _classic_with_bands("a4c"),
           "subcostal": _subcostal, **{f"psax_{lv}": _psax_lv(lv) for lv in LV_LEVELS}}


def _reverberation(c: Canvas, nodules: list, heart: Heart, look: Look) -> None:
    """Faint ghosts of each calcified nodule further along its beam (multiple reflections)."""
    for (x, z, r), n in zip(nodules, heart.nodules):
        dist = math.hypot(x, z)
        if dist < 1e-3:
            continue
        d = np.array([x, z]) / dist
        for k in (1, 2):
            gx, gz = np.array([x, z]) + d * k * max(2.5 * r, 3.0)
            i, j = (gz - c.z0) / c.res, (gx - c.x0) / c.res
            rad = max(int(round(r * 0.8 / c.res)), 1)
            if 0 <= i < c.echo.shape[0] and 0 <= j < c.echo.shape[1]:
                cv2.ellipse(c.echo, (int(j), int(i)), (rad * 2, rad), math.degrees(math.atan2(d[1], d[0])) + 90, 0, 360,
                            float(c.echo[int(i), int(j)] + n.echo * look.reverb * 0.5 ** (k - 1)), -1)


def render(view: str, heart: Heart, pose: Pose, phase: float, depth_mm: float, half_angle_deg: float,
           rng: np.random.Generator, look: Look, look_seed: int, res_mm: float = 0.3,
           tex: np.ndarray | None = None) -> Scene:
    """Draw ``view`` (``psax_av``, ``plax``, ``a4c``, ``subcostal``, ``psax_base|mid|apex``) in probe coordinates.

    ``look_seed`` seeds the patchy details (wall stretches, cusp blobs) so they stay put over a clip.
    """
    if view not in DRAWERS:
        raise ValueError(f"unknown realistic view {view!r}; expected one of {sorted(DRAWERS)}")
    c = Canvas(depth_mm, half_angle_deg, res_mm, pose, heart.warp, background=look.background)
    common_background(c, rng, depth_mm)
    own = np.random.default_rng(look_seed)
    nodules = DRAWERS[view](c, heart, phase, rng, look, own)
    if nodules and view == "psax_av":
        _reverberation(c, nodules, heart, look)
    scene = c.scene()
    scene.echo = cv2.GaussianBlur(scene.echo, (0, 0), 0.5 / res_mm)
    if tex is not None:
        is_blood = scene.echo <= BLOOD * 1.01
        scene.echo *= np.where(is_blood, np.sqrt(tex), tex)
    scene.nodules = nodules
    scene.has_valve = view in ("psax_av", "plax")
    return scene


__all__ = ["Look", "sample_look", "render", "DRAWERS", "LV_LEVELS"]
