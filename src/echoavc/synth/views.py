"""The views of a synthetic heart: what each draws onto a ``Canvas`` (probe coordinates, mm).

``VIEW_DRAWERS[view](canvas, heart, phase, rng)`` draws one view and returns the nodules it shows as
(x, z, radius) in probe mm; ``common_background`` the chest wall layers every view shares.
:func:`echoavc.synth.anatomy.render` calls them.
"""

from __future__ import annotations

import math

import numpy as np

from echoavc.synth.anatomy import (
    BLOOD, BLOOD_ATTEN, Canvas, Heart, Nodule, arc, bezier, blob, cardiac_phase_name, contraction, valve_opening,
)


def common_background(c: Canvas, rng: np.random.Generator, depth_mm: float) -> None:
    """Chest wall layers in the near field (probe coordinates, not posed)."""
    h, w = c.echo.shape
    z = (np.arange(h) + 0.5) * c.res
    wall = float(rng.uniform(8, 16))
    prof = np.where(z < wall, 1.0 + 2.5 * np.abs(np.sin(z / wall * np.pi * rng.uniform(2, 4))), 0.0)
    c.echo[:] = np.maximum(c.echo, prof[:, None].astype(np.float32))


def _psax_av(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator) -> list[tuple[float, float, float]]:
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


def _aortic_valve_psax(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator):
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
    return draw_nodules(c, heart.nodules, curves, comm, cpts, op, R, wall, rng)


def draw_nodules(c, nodules, curves, comm, cpts, op: float, R: float, wall: float, rng) -> list:
    """Draw each calcium nodule where its site puts it (on a cusp, at a commissure, in the root wall)."""
    out = []
    for n in nodules:
        if n.site == "cusp":
            curve = curves[n.index]
            p = curve[int(np.clip(round(n.s * (len(curve) - 1)), 0, len(curve) - 1))]
            mid = comm[n.index] + _ang_between(comm[n.index], comm[(n.index + 1) % 3]) / 2
            p = p + np.array([math.cos(mid), math.sin(mid)]) * n.offset_mm * (1 - 0.8 * op)
        elif n.site == "commissure":
            p = cpts[n.index] * 0.95
        else:
            ang = comm[n.index] + math.radians(n.s)
            p = np.array([math.cos(ang), math.sin(ang)]) * (R + wall * 0.4)
        out.append(_draw_nodule(c, p, n, rng))
    return out


def _ang_between(a: float, b: float) -> float:
    d = (b - a) % (2 * np.pi)
    return d


def _draw_nodule(c: Canvas, p: np.ndarray, n: Nodule, rng: np.random.Generator):
    # the outline is the nodule's own (seeded by its parameters), so it does not flicker between frames
    own = np.random.default_rng([int(n.radius_mm * 1e6), int(n.echo * 1e3), n.index])
    c.fill(blob(p[0], p[1], n.radius_mm, own), n.echo, n.atten, valve=1)
    q = c.probe(p)[0]
    return (float(q[0]), float(q[1]), float(n.radius_mm * c.pose.scale))


def _psax_mid(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator):
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


def plax_aortic_valve(c: Canvas, heart: Heart, op: float, rng: np.random.Generator) -> list:
    """The aortic valve seen from the side (long axis, valve at the origin, the root running to +u): annulus,
    two cusps hinged on it (the left coronary cusp is out of the plane), their nodules; marked as the valve."""
    R, wall = heart.ao_r, heart.ao_wall
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
    return nodules_mm


def _plax(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator):
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
    nodules_mm = plax_aortic_valve(c, heart, op, rng)
    # posterior wall and pericardium
    c.line(np.vstack([arc(-40, 0, 68, 40, 40, 150)]), heart.peri_mm, heart.peri_echo)
    c.line(np.array([[-80, R + 30], [-20, R + 34], [30, R + 2 * heart.la[3] + 12], [60, R + 2 * heart.la[3] + 8]]),
           heart.peri_mm, heart.peri_echo)
    # descending aorta behind the LA
    c.blood(arc(14, R + 2 * heart.la[3] + 22, 7, 6, 0, 360))
    return nodules_mm


def _a4c(c: Canvas, heart: Heart, phase: float, rng: np.random.Generator):
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


VIEW_DRAWERS = {"psax_av": _psax_av, "psax_mid": _psax_mid, "plax": _plax, "a4c": _a4c}
