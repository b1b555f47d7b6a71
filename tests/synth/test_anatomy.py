"""Anatomy: valve motion, patient variation, pathology by grade."""

from __future__ import annotations

import numpy as np
import pytest

from echoavc.synth import anatomy as A


def _heart(seed, grade=0):
    return A.Heart.sample(np.random.default_rng(seed), grade)


def _at(scene, x, z):
    i, j = int((z - scene.z0_mm) / scene.res_mm), int((x - scene.x0_mm) / scene.res_mm)
    return scene.echo[i - 1:i + 2, j - 1:j + 2].mean()


def test_valve_closed_in_diastole_open_in_systole():
    heart = _heart(1)
    pose = A.Pose(0, 70, 0, 1.0)
    rng = np.random.default_rng(0)
    dia = A.render("psax_av", heart, pose, 0.8, 150, 40, rng)
    sys_ = A.render("psax_av", heart, pose, 0.2, 150, 40, rng)
    assert A.cardiac_phase_name(0.8) == "diastole" and A.cardiac_phase_name(0.2) == "systole"
    # the three cusps meet in the middle (Mercedes-Benz sign) only when closed
    centre = heart.warp(np.array([[0.0, 0.0]]))[0] + (0, 70)
    assert _at(dia, *centre) > 10 * A.BLOOD
    assert _at(sys_, *centre) < 3 * A.BLOOD


def test_no_two_hearts_share_a_template():
    pose = A.Pose(0, 70, 0, 1.0)
    maps = [A.render("psax_av", _heart(s), pose, 0.8, 150, 40, np.random.default_rng(0)).echo for s in range(4)]
    blood = [m < 3 * A.BLOOD for m in maps]
    for i in range(4):
        for j in range(i + 1, 4):
            overlap = (blood[i] & blood[j]).sum() / (blood[i] | blood[j]).sum()
            assert overlap < 0.9, (i, j, overlap)


@pytest.mark.parametrize("view", A.VIEWS)
def test_every_view_renders_with_blood_pools_and_a_bright_pericardium(view):
    sc = A.render(view, _heart(3), A.Pose(0, 80, 5, 1.0), 0.7, 160, 40, np.random.default_rng(0))
    assert (sc.echo < 3 * A.BLOOD).mean() > 0.02
    assert sc.echo.max() > 30
    assert sc.has_valve == (view in A.VALVE_VIEWS)
    assert (sc.valve.any()) == (view in A.VALVE_VIEWS)


def test_pathology_by_grade():
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert A.sample_nodules(rng, 0) == ()
        g1 = A.sample_nodules(rng, 1)
        g3 = A.sample_nodules(rng, 3)
        assert len(g1) == 1 and len(g3) >= 4
        assert max(n.radius_mm for n in g1) <= min(n.radius_mm for n in g3) + 0.3
    hearts = [_heart(s, 1) for s in range(40)]
    # grade 1 is subtle: its nodule is no brighter than the brightest normal fibrous annulus
    g1_echo = max(n.echo for h in hearts for n in h.nodules)
    arc_echo = max(a[2] for h in hearts for a in h.annulus_arcs)
    assert g1_echo <= arc_echo
    assert _heart(0, 3).leaflet_mm > _heart(0, 0).leaflet_mm  # thickening


def test_progression_keeps_and_grows_nodules():
    h = _heart(5, 1)
    later = h.progressed(np.random.default_rng(1), 3)
    assert later.grade == 3 and len(later.nodules) > len(h.nodules)
    assert later.nodules[0].site == h.nodules[0].site and later.nodules[0].radius_mm > h.nodules[0].radius_mm
    assert h.progressed(np.random.default_rng(1), 1) is h


def test_nodules_rendered_where_reported():
    heart = _heart(7, 3)
    sc = A.render("psax_av", heart, A.Pose(5, 75, 10, 1.0), 0.8, 150, 40, np.random.default_rng(0))
    assert len(sc.nodules) == len(heart.nodules)
    for x, z, r in sc.nodules:
        i, j = int((z - sc.z0_mm) / sc.res_mm), int((x - sc.x0_mm) / sc.res_mm)
        assert sc.valve[i, j] == 1
        assert sc.atten[i - 1:i + 2, j - 1:j + 2].max() > 0.3
