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
    # grade 1 is mild but gradable: its one nodule is far more echogenic than the cusp it sits on (a reader
    # grades a spot because it is brighter than the leaflet; rendered contrast: test below), yet no brighter
    # than the brightest normal structure around the heart (the pericardium), and dimmer than grade 3
    assert min(n.echo / h.leaflet_echo for h in hearts for n in h.nodules) >= 20
    g1_echo = max(n.echo for h in hearts for n in h.nodules)
    assert g1_echo <= max(h.peri_echo for h in hearts)
    g3 = [n for s in range(40) for n in _heart(s, 3).nodules]
    assert np.median([n.echo for h in hearts for n in h.nodules]) < np.median([n.echo for n in g3])
    assert max(n.atten for h in hearts for n in h.nodules) <= max(n.atten for n in g3)
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


def _g1_contrast(seed: int, with_nodule: bool = True) -> float:
    """dB between the envelope peak over a grade-1 nodule and the 90th percentile of the leaflets'
    envelope elsewhere in the valve, on one rendered diastolic frame (the cohort's acquisition ranges)."""
    from dataclasses import replace

    from echoavc.synth import cohort as C
    from echoavc.synth import scanner as S

    heart = _heart(seed, 1)
    rng = np.random.default_rng(1000 + seed)
    acq = C._acquisition(rng, "psax_av")
    pose = C._pose(rng, "psax_av", heart, acq.depth_mm)
    half = acq.sector_deg / 2
    grid = S.polar_grid(acq)
    r_env = S.envelope_ranges(grid, acq)

    def polar(h, nearest=False, leaflet_echo=None):
        h = replace(h, leaflet_echo=leaflet_echo) if leaflet_echo else h
        sc = A.render("psax_av", h, pose, 0.7, acq.depth_mm, half, np.random.default_rng(1))
        return sc, S.sample_polar(sc.echo, grid, sc.x0_mm, sc.z0_mm, sc.res_mm, r_mm=r_env if nearest else None)

    sc, echo_p = polar(heart if with_nodule else replace(heart, nodules=()))
    att_p = S.sample_polar(sc.atten, grid, sc.x0_mm, sc.z0_mm, sc.res_mm)
    env = S.beamform(echo_p, att_p, grid, acq, np.random.default_rng(seed)).envelope
    db = 20 * np.log10(np.maximum(env, 1e-6))
    bare = replace(heart, nodules=())
    leaf = (polar(bare, True, 1e4)[1] - polar(bare, True)[1]) > 5e3  # leaflet cells on the envelope grid
    x, z, r = polar(heart)[0].nodules[0]
    rr, th = np.hypot(x, z), np.arctan2(x, z)
    dist_r = np.abs(r_env[:, None] - rr)
    dist_x = np.abs(grid.th_rad[None, :] - th) * rr
    fwhm = float(S.beam_fwhm_mm(np.array([rr]), acq)[0])
    core = (dist_r <= r + 0.5) & (dist_x <= r + 0.5)
    away = (dist_r > r + 3) | (dist_x > r + fwhm)
    return float(db[core].max() - np.percentile(db[leaf & away], 90))


def test_grade1_nodule_is_brighter_than_the_leaflets_on_screen():
    """Grade 1 must be visible to a reader: on rendered frames its spot stands out of the leaflets' bright
    speckle (median several dB), unlike the same spot of the same frame without the nodule (the control)."""
    seeds = range(8)
    with_n = [_g1_contrast(s) for s in seeds]
    without = [_g1_contrast(s, with_nodule=False) for s in seeds]
    assert np.median(with_n) >= 6.0, with_n
    assert sum(c >= 3.0 for c in with_n) >= 6, with_n
    assert np.median(without) < 3.0, without
    assert np.median(np.subtract(with_n, without)) >= 6.0
