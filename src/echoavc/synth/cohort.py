"""Synthetic cohorts: patients, exams, DICOM files and the ground-truth tables.

``make_cohort(out_dir, patients, seed)`` writes::

    out_dir/
      dicom/<patient id>/<accession>/US<nn>.dcm   one clip (or single frame) per file
      frames.csv         one row per frame: source_sha256 + frame_index -> view, phase, valve box, nodules...
      labels.csv         one row per exam: exam_id, patient_id, calcified, grade (the user-side label schema)
      maxqda_valves.csv  valve rectangles of the aortic-valve short-axis frames, MAXQDA-style
      cohort.json        the settings and seed that made it

Everything is a function of the seed: the same seed gives byte-identical
files. Each patient draws from its own ``SeedSequence(seed, spawn_key=(i,))``
stream, so the result does not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text, atomic_write_with, progress_bar
from echoavc.settings import SynthSettings
from echoavc.synth import anatomy as A
from echoavc.synth import dicom as D
from echoavc.synth import phase as P
from echoavc.synth import scanner as S
from echoavc.synth import screen as V

FRAME_COLUMNS = [
    "source_sha256", "frame_index", "file", "patient_id", "exam_id", "study_instance_uid",
    "sop_instance_uid", "view", "valve_phase", "cycle_fraction", "frame_time_ms", "phase_header", "ecg_on_screen",
    "valve_x1", "valve_y1", "valve_x2", "valve_y2", "nodules", "calcified", "grade",
    "rows", "columns", "number_of_frames", "encoding", "transfer_syntax", "photometric",
    "layout", "has_us_regions", "zoomed", "depth_mm", "freq_mhz", "gain_db", "dynamic_range_db",
    "sector_deg", "cone_apex_x", "cone_apex_y", "cone_r_min_px", "cone_r_max_px",
    "cone_half_angle_deg", "cone_clip_box",
]
LABEL_COLUMNS = ["exam_id", "patient_id", "calcified", "grade", "study_instance_uid", "study_date", "exam_index"]
MAXQDA_COLUMNS = ["image", "code", "x", "y", "width", "height", "coordinate_space"]
MAXQDA_CODE = "Aortic valve"

_FIRST = ("JANE", "JOHN", "MARIA", "JOSE", "ANA", "PAUL", "RITA", "LUIS", "EMMA", "NOAH", "SARA", "HUGO",
          "INES", "RUI", "CARLA", "PEDRO", "LUCIA", "MARK", "ELENA", "TIAGO", "OLGA", "IVAN", "NINA", "OMAR")
_LAST = ("DOE", "ROE", "SILVA", "SANTOS", "FERREIRA", "PEREIRA", "COSTA", "MARTINS", "SOUSA", "LOPES",
         "SMITH", "JONES", "BROWN", "MOREAU", "ROSSI", "MULLER", "NOVAK", "KOWALSKI", "HANSEN", "EVANS")
_INSTITUTIONS = ("Hospital Sintetico Norte", "Clinica Imaginaria", "Fictional General Hospital",
                 "Demo Heart Centre")


@dataclass(frozen=True)
class CohortPaths:
    out_dir: Path
    frames: Path
    labels: Path
    maxqda: Path
    meta: Path

    @classmethod
    def of(cls, out_dir: str | Path) -> "CohortPaths":
        """The table paths of the cohort folder ``out_dir``, as :func:`make_cohort` writes them."""
        out_dir = Path(out_dir)
        return cls(out_dir, out_dir / "frames.csv", out_dir / "labels.csv", out_dir / "maxqda_valves.csv",
                   out_dir / "cohort.json")


# ----------------------------------------------------------------------------- one clip


@dataclass(frozen=True)
class ClipPlan:
    view: str
    n_frames: int
    encoding: str
    layout: str
    us_regions: bool
    zoomed: bool
    series_number: int
    level: str = ""  #: realistic anatomy: short-axis level of a ``psax_mid`` clip (base, mid, apex)
    beats: float = 1.0  #: cardiac cycles the clip spans (classic anatomy)


#: Where the receiver noise floor sits on the display: its RMS as a share of the dynamic range
#: above black (0.2 with a grey map exponent of 1.8 is grey level 14).
FLOOR_DISPLAY = (0.17, 0.25)
#: Frame interval (ms) over which consecutive frames keep ``Acquisition.frame_correlation`` of
#: their scatterers; frames further apart decorrelate more (correlation ** (interval / this)).
CORRELATION_INTERVAL_MS = 33.0


def _acquisition(rng: np.random.Generator, view: str) -> S.Acquisition:
    depth = float(rng.uniform(150, 200) if view == "a4c" else rng.uniform(130, 185))
    # display: the echo level shown white (dB above unit echogenicity, before gain) and the range below it
    gain, dr, white = float(rng.uniform(-5, 5)), float(rng.uniform(45, 65)), float(rng.uniform(33, 42))
    # receiver noise floor: placed where the display shows it as a faint grey (a share of the
    # displayed dynamic range above black), as on real scanners where the field is never black
    floor_x = float(rng.uniform(*FLOOR_DISPLAY))
    floor_db = floor_x * dr - (dr - white) - gain
    return S.Acquisition(
        depth_mm=depth,
        sector_deg=float(rng.uniform(70, 90)),
        freq_mhz=float(rng.uniform(1.8, 3.4)),
        pulse_sigma_cycles=float(rng.uniform(1.8, 2.6)),
        focus_mm=float(rng.uniform(0.4, 0.7) * depth),
        aperture_mm=float(rng.uniform(16, 22)),
        n_lines=int(rng.integers(160, 220)),
        gain_db=gain,
        dynamic_range_db=dr,
        tissue_level_db=dr - white,
        grey_gamma=float(rng.uniform(1.5, 2.1)),
        noise_db=float(rng.uniform(-54, -40)),
        floor_db=floor_db,
        tgc_error_db=tuple(float(x) for x in rng.normal(0, 2.5, 5)),
        frame_correlation=float(rng.uniform(0.3, 0.7)),
    )


def _pose(rng: np.random.Generator, view: str, heart: A.Heart, depth_mm: float) -> A.Pose:
    u = rng.uniform
    if view == "subcostal":  # realistic anatomy only; its own draws leave the classic views' streams unchanged
        return A.Pose(float(u(-10, 10)), float(min(u(95, 125), depth_mm - 45)), float(u(-15, 15)), heart.scale)
    z = {"psax_av": u(55, 85), "plax": u(62, 88), "psax_mid": u(65, 95), "a4c": u(95, 118)}[view]
    z = min(z, depth_mm - 45)
    x = {"psax_av": u(-12, 12), "plax": u(-5, 15), "psax_mid": u(-10, 10), "a4c": u(-10, 10)}[view]
    return A.Pose(float(x), float(z), float(u(-15, 15)), heart.scale)


def render_clip(heart: A.Heart, plan: ClipPlan, rng: np.random.Generator, heart_rate: int, anatomy: str = "classic"):
    """Render the frames of one clip. Returns (frames RGB uint8 (n,H,W,3), per-frame truth, display, acq).

    ``anatomy``: "classic", or "realistic" (:func:`echoavc.synth.variety.render_clip`)."""
    if anatomy == "realistic":
        from echoavc.synth.variety import render_clip as realistic_clip

        return realistic_clip(heart, plan, rng, heart_rate)
    acq = _acquisition(rng, plan.view)
    layout = V.LAYOUTS[plan.layout]
    pose = _pose(rng, plan.view, heart, acq.depth_mm)
    half = acq.sector_deg / 2
    zoom = None
    if plan.zoomed:
        r0 = max(pose.z_mm - rng.uniform(25, 35), 5.0)
        r1 = min(pose.z_mm + rng.uniform(28, 40), acq.depth_mm)
        zoom = (float(r0), float(r1), float(pose.x_mm))
    disp = V.sector_display(layout, acq.depth_mm, half, zoom)
    grid = S.polar_grid(acq)
    x0, sh, sw = A.scene_geometry(acq.depth_mm, half, 0.3)
    tex = A.texture((sh, sw), 0.3, rng)
    r_disp = S.envelope_ranges(grid, acq)
    conv = S.ScanConverter(r_disp, grid.th_rad, disp)
    start = float(rng.uniform(0, 1))
    scat = None
    # speckle decorrelates with time (tissue motion, probe motion, breathing): frames of a short
    # clip, spread over a whole cardiac cycle, are far apart and share little of their speckle
    interval_ms = 60000.0 / heart_rate / max(plan.n_frames, 1) * plan.beats
    corr = acq.frame_correlation ** (interval_ms / CORRELATION_INTERVAL_MS)
    frames, truth = [], []
    for i in range(plan.n_frames):
        phase = (start + i * plan.beats / plan.n_frames) % 1.0
        jit = A.Pose(pose.x_mm + float(rng.normal(0, 0.6)), pose.z_mm + float(rng.normal(0, 0.6)),
                     pose.rot_deg + float(rng.normal(0, 0.8)), pose.scale)
        scene = A.render(plan.view, heart, jit, phase, acq.depth_mm, half, rng, tex=tex)
        echo_p = S.sample_polar(scene.echo, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        att_p = S.sample_polar(scene.atten, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        scat = S.speckle_field(echo_p.shape, rng, scat, corr)
        beam = S.beamform(echo_p, att_p, grid, acq, rng, scatterers=scat)
        img = conv(S.log_compress(beam.envelope, acq))
        gray = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        frame = np.repeat(gray[:, :, None], 3, axis=2)
        box = None
        if scene.has_valve:
            box = valve_box(scene, grid, acq, conv, disp, jit)
        nodules = visible_nodules(scene, disp, conv)
        frames.append(frame)
        truth.append({"phase": phase, "box": box, "nodules": nodules})
    return np.stack(frames), truth, disp, acq, conv


def valve_box(scene: A.Scene, grid: S.PolarGrid, acq: S.Acquisition, conv: S.ScanConverter,
              disp: S.Display, pose: A.Pose) -> tuple[float, float, float, float] | None:
    """Box (x1, y1, x2, y2; pixel edges) around the valve as rendered: the valve mask pushed
    through the same polar sampling and scan conversion, grown by the point-spread function."""
    r_disp = S.envelope_ranges(grid, acq)
    vp = S.sample_polar(scene.valve.astype(np.float32), grid, scene.x0_mm, scene.z0_mm, scene.res_mm,
                        nearest=True, r_mm=r_disp)
    vimg = conv(vp, nearest=True)
    ys, xs = np.nonzero(vimg > 0.5)
    if xs.size < 20:
        return None
    r_valve = float(math.hypot(pose.x_mm, pose.z_mm))
    fwhm = float(S.beam_fwhm_mm(np.array([r_valve]), acq)[0])
    pulse = acq.pulse_sigma_cycles * S.wavelength_mm(acq.freq_mhz) / 2
    margin = disp.px_per_mm * max(0.5 * fwhm, 2.0 * pulse) + 1.0
    x1, y1 = max(xs.min() - margin, 0.0), max(ys.min() - margin, 0.0)
    x2, y2 = min(xs.max() + 1 + margin, float(disp.width)), min(ys.max() + 1 + margin, float(disp.height))
    return (round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))


# ----------------------------------------------------------------------------- one patient


def _plan_exam(rng: np.random.Generator, settings: SynthSettings, series0: int) -> list[ClipPlan]:
    f = settings.frames_per_exam
    n_dis = int(round(f * settings.distractor_fraction)) if f >= 3 else 0
    n_av = f - n_dis
    layout = str(rng.choice(sorted(V.LAYOUTS)))
    enc_names = sorted(D.ENCODINGS)

    def clip(view, n, zoom=False):
        nonlocal series0
        series0 += 1
        return ClipPlan(view, n, str(rng.choice(enc_names)), layout,
                        bool(rng.uniform() < settings.us_regions_fraction), zoom, series0)

    plans = []
    if settings.anatomy == "realistic":
        return _plan_realistic(rng, settings, clip, n_av, n_dis)
    # aortic-valve short axis: one or two clips (one may be zoomed on the valve)
    if n_av >= 4 and rng.uniform() < 0.5:
        a = n_av // 2
        plans += [clip("psax_av", a), clip("psax_av", n_av - a, bool(rng.uniform() < settings.zoom_fraction * 2))]
    else:
        plans.append(clip("psax_av", n_av, bool(rng.uniform() < settings.zoom_fraction)))
    views = list(rng.permutation(["plax", "psax_mid", "a4c"]))
    k = 0
    while n_dis > 0:
        n = int(min(n_dis, rng.integers(1, 3)))
        plans.append(clip(str(views[k % 3]), n))
        n_dis -= n
        k += 1
    return plans


def _plan_realistic(rng: np.random.Generator, settings: SynthSettings, clip, n_av: int, n_dis: int) -> list[ClipPlan]:
    """Realistic anatomy: more zoomed root views, and short axes below the valve at three levels."""
    from echoavc.synth.realistic import LV_LEVELS
    from echoavc.synth.variety import ZOOM_SHARE

    zoom = max(settings.zoom_fraction, ZOOM_SHARE)
    plans = []
    if n_av >= 2 and rng.uniform() < 0.6:
        a = n_av // 2
        plans += [clip("psax_av", a), clip("psax_av", n_av - a, bool(rng.uniform() < zoom))]
    elif n_av:
        plans.append(clip("psax_av", n_av, bool(rng.uniform() < zoom)))
    while n_dis > 0:
        n = int(min(n_dis, rng.integers(1, 3)))
        # short axes below the valve half of the time: real LV rings are the negatives most like an aortic root
        view = str(rng.choice(["plax", "psax_mid", "psax_mid", "psax_mid", "a4c", "subcostal"]))
        plans.append(replace(clip(view, n), level=str(rng.choice(LV_LEVELS)) if view == "psax_mid" else ""))
        n_dis -= n
    return plans


def patient_id_of(seed: int, index: int) -> str:
    """The synthetic PatientID of patient ``index`` of the cohort made with ``seed`` (the seed modulo 1000)."""
    return f"MRN{seed % 1000:03d}{index:05d}"


def _fake_identity(rng: np.random.Generator, index: int, seed: int) -> dict:
    sex = str(rng.choice(["F", "M"]))
    first = str(rng.choice(_FIRST))
    last = str(rng.choice(_LAST))
    year = int(rng.integers(1935, 1976))
    return {
        "name": f"{last}^{first}",
        "display_name": f"{last}, {first}",
        "patient_id": patient_id_of(seed, index),
        "birth_date": f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}",
        "sex": sex,
        "institution": str(rng.choice(_INSTITUTIONS)),
        "referring": f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}^^DR",
        "operator": f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}",
    }


def _uid(seed: int, *parts) -> str:
    """A deterministic UID under the 2.25 (UUID) root, from the seed and the parts."""
    import hashlib
    import uuid

    digest = hashlib.sha256("/".join(["echoavc-synth", str(seed), *map(str, parts)]).encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def make_patient(args: tuple) -> tuple[list[dict], list[dict]]:
    """Render and write every exam of one patient. Returns (frame rows, label rows)."""
    out_dir, seed, index, first_grade, settings = args
    out_dir = Path(out_dir)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    ident = _fake_identity(rng, index, seed)
    heart = A.Heart.sample(rng, first_grade)
    day0 = np.datetime64("2015-01-01") + np.timedelta64(int(rng.integers(0, 3000)), "D")
    frame_rows, label_rows = [], []
    series = 0
    for e in range(settings.exams_per_patient):
        if e > 0:
            day0 = day0 + np.timedelta64(int(rng.integers(180, 730)), "D")
            if heart.grade < 3 and rng.uniform() < settings.progression_probability:
                heart = heart.progressed(rng, heart.grade + 1) if heart.grade > 0 else \
                    A.Heart(**{**heart.__dict__, "grade": 1, "nodules": A.sample_nodules(rng, 1),
                               "leaflet_mm": heart.leaflet_mm + 0.25, "leaflet_echo": heart.leaflet_echo * 1.25})
        date = str(day0).replace("-", "")
        accession = f"A{seed % 1000:03d}{index:05d}{e:02d}"
        study_uid = _uid(seed, index, e, "study")
        hr = int(rng.integers(55, 95))
        hh, mm = int(rng.integers(8, 18)), int(rng.integers(0, 60))
        label_rows.append({"exam_id": accession, "patient_id": ident["patient_id"],
                           "calcified": int(heart.grade > 0), "grade": heart.grade,
                           "study_instance_uid": study_uid, "study_date": date, "exam_index": e})
        for plan in _plan_exam(rng, settings, 0):
            series += 1
            plan = replace(plan, beats=settings.beats_per_clip)
            frames, truth, disp, acq, conv = render_clip(heart, plan, rng, hr, settings.anatomy)
            acq_time = f"{hh:02d}{mm:02d}{min(series * 7, 59):02d}"
            text = V.ScreenText(ident["display_name"], ident["patient_id"],
                                f"{date[6:8]}/{date[4:6]}/{date[:4]}" if plan.layout != "cart" else
                                f"{date[:4]}-{date[4:6]}-{date[6:8]}",
                                f"{hh:02d}:{mm:02d}", ident["institution"][:24],
                                float(rng.uniform(30, 70)),
                                acq.depth_mm, acq.freq_mhz, int(50 + 2 * acq.gain_db),
                                acq.dynamic_range_db, hr)
            timing = P.clip_timing(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, e, series, 7))),
                                   settings, V.LAYOUTS[plan.layout], hr, plan, truth)
            for i in range(len(frames)):
                V.overlay(frames[i], disp, V.LAYOUTS[plan.layout], text, truth[i]["phase"],
                          rng_seed=seed * 7919 + index * 31 + series, ecg=timing.style)
            region = _region(conv, disp, acq) if plan.us_regions else None
            sop_uid = _uid(seed, index, e, series, "sop")
            layout = V.LAYOUTS[plan.layout]
            header = D.Header(
                patient_name=ident["name"], patient_id=ident["patient_id"], birth_date=ident["birth_date"],
                sex=ident["sex"], study_uid=study_uid, series_uid=_uid(seed, index, e, series, "series"),
                sop_uid=sop_uid, study_date=date, study_time=f"{hh:02d}{mm:02d}00", accession=accession,
                study_id=f"{e + 1}", institution=ident["institution"], referring=ident["referring"],
                operator=ident["operator"], manufacturer=layout.vendor, model=layout.model,
                station=f"US{index % 97:02d}{seed % 10000:04d}", series_number=series, instance_number=1,
                frame_time_ms=60000.0 / hr / max(plan.n_frames, 1) * plan.beats, heart_rate=hr,
                acquisition_time=acq_time)
            ds = D.build_dataset(frames, plan.encoding, header, region,
                                 jpeg_quality=int(rng.integers(80, 96)))
            P.add_timing(ds, timing, V.LAYOUTS[plan.layout] if plan.us_regions else None)
            data = D.encode(ds)
            rel = Path("dicom") / ident["patient_id"] / accession / f"US{series:02d}.dcm"
            sha = D.write_atomic(out_dir / rel, data)
            syntax, photometric = D.ENCODINGS[plan.encoding]
            for i, t in enumerate(truth):
                box = t["box"]
                frame_rows.append({
                    "source_sha256": sha, "frame_index": i, "file": rel.as_posix(),
                    "patient_id": ident["patient_id"], "exam_id": accession, "study_instance_uid": study_uid,
                    "sop_instance_uid": sop_uid, "view": plan.view,
                    "valve_phase": A.valve_phase_name(t["phase"]), "cycle_fraction": round(t["phase"], 4),
                    "frame_time_ms": round(header.frame_time_ms, 3), "phase_header": timing.header,
                    "ecg_on_screen": timing.screen,
                    "valve_x1": box[0] if box else None, "valve_y1": box[1] if box else None,
                    "valve_x2": box[2] if box else None, "valve_y2": box[3] if box else None,
                    "nodules": json.dumps(t["nodules"]), "calcified": int(heart.grade > 0), "grade": heart.grade,
                    "rows": disp.height, "columns": disp.width, "number_of_frames": len(truth),
                    "encoding": plan.encoding, "transfer_syntax": str(syntax), "photometric": photometric,
                    "layout": plan.layout, "has_us_regions": int(plan.us_regions), "zoomed": int(plan.zoomed),
                    "depth_mm": round(acq.depth_mm, 1), "freq_mhz": round(acq.freq_mhz, 2),
                    "gain_db": round(acq.gain_db, 2), "dynamic_range_db": round(acq.dynamic_range_db, 1),
                    "sector_deg": round(acq.sector_deg, 2), "cone_apex_x": round(disp.apex_x, 2),
                    "cone_apex_y": round(disp.apex_y, 2),
                    "cone_r_min_px": round(disp.r_min_mm * disp.px_per_mm, 2),
                    "cone_r_max_px": round(disp.r_max_mm * disp.px_per_mm, 2),
                    "cone_half_angle_deg": round(disp.half_angle_deg, 3),
                    "cone_clip_box": json.dumps(list(disp.clip_box)) if disp.clip_box else "",
                })
    return frame_rows, label_rows


def _region(conv: S.ScanConverter, disp: S.Display, acq: S.Acquisition) -> D.Region:
    ys, xs = np.nonzero(conv.mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    return D.Region(x0, y0, x1, y1, 0.1 / disp.px_per_mm, int(round(disp.apex_x)) - x0,
                    int(round(disp.apex_y)) - y0, int(round(acq.freq_mhz * 1000)))


# ----------------------------------------------------------------------------- the cohort


def assign_grades(patients: int, seed: int, settings: SynthSettings) -> list[int]:
    """Grade of each patient at the first exam: exactly round(prevalence * N) calcified."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 1,)))
    n_cal = int(round(settings.prevalence * patients))
    w = np.asarray(settings.grade_weights, dtype=float)
    grades = [0] * (patients - n_cal) + list(rng.choice([1, 2, 3], size=n_cal, p=w / w.sum()))
    return [int(g) for g in rng.permutation(grades)]


def _write_csv_atomic(rows: list[dict], columns: list[str], path: Path) -> None:
    import pandas as pd

    atomic_write_with(path, lambda tmp: pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False))


def maxqda_rows(frame_rows: list[dict]) -> list[dict]:
    """Valve rectangles for the aortic-valve short-axis frames (what the paper annotated)."""
    out = []
    for r in frame_rows:
        if r["view"] != "psax_av" or r["valve_x1"] is None:
            continue
        out.append({"image": f"{r['source_sha256']}:{r['frame_index']}", "code": MAXQDA_CODE,
                    "x": r["valve_x1"], "y": r["valve_y1"],
                    "width": round(r["valve_x2"] - r["valve_x1"], 1),
                    "height": round(r["valve_y2"] - r["valve_y1"], 1), "coordinate_space": "original"})
    return out


def make_cohort(out_dir: str | Path, patients: int, seed: int = 0, prevalence: float | None = None,
                settings: SynthSettings | None = None, progress: bool = True, **overrides) -> CohortPaths:
    """Write a synthetic cohort of ``patients`` patients into ``out_dir``; returns the table paths.

    ``prevalence`` and any field of :class:`~echoavc.settings.SynthSettings`
    (``frames_per_exam=``, ``exams_per_patient=``, ``workers=`` ...) may be given as keywords.
    """
    settings = settings or SynthSettings()
    if prevalence is not None:
        overrides["prevalence"] = prevalence
    if overrides:
        settings = replace(settings, **overrides)
    out_dir = Path(out_dir)
    if patients < 1:
        raise EchoAVCError("patients must be at least 1", out_dir)
    if not 0.0 <= settings.prevalence <= 1.0:
        raise EchoAVCError(f"prevalence must be within 0..1, got {settings.prevalence}", out_dir)
    if settings.frames_per_exam < 1 or settings.exams_per_patient < 1:
        raise EchoAVCError("frames_per_exam and exams_per_patient must be at least 1", out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EchoAVCError(f"cannot create the output folder: {exc.strerror}", out_dir) from exc
    grades = assign_grades(patients, seed, settings)
    jobs = [(str(out_dir), int(seed), i, grades[i], settings) for i in range(patients)]
    workers = settings.workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    workers = max(1, min(workers, patients))
    results: list[tuple[list[dict], list[dict]] | None] = [None] * patients
    with progress_bar("synth patients", patients, progress) as advance:
        if workers == 1:
            for i, job in enumerate(jobs):
                results[i] = make_patient(job)
                advance()
        else:
            from echoavc.runner import worker_context

            with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(),
                                     initializer=_worker_init) as pool:
                for i, res in enumerate(pool.map(make_patient, jobs, chunksize=1)):
                    results[i] = res
                    advance()
    frame_rows = [r for res in results for r in res[0]]
    label_rows = [r for res in results for r in res[1]]
    paths = CohortPaths.of(out_dir)
    _write_csv_atomic(frame_rows, FRAME_COLUMNS, paths.frames)
    _write_csv_atomic(label_rows, LABEL_COLUMNS, paths.labels)
    _write_csv_atomic(maxqda_rows(frame_rows), MAXQDA_COLUMNS, paths.maxqda)
    meta = {"generator": "echoavc.synth", "patients": patients, "seed": seed, "settings": asdict(settings)}
    atomic_write_text(paths.meta, json.dumps(meta, indent=2))
    return paths


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def visible_nodules(scene, disp, conv) -> list[list[float]]:
    """The scene's calcium nodules that fall inside the displayed field, as [x, y, radius] in screen pixels."""
    nodules = []
    if scene.has_valve:
        for (x, z, r) in scene.nodules:
            px, py = disp.apex_x + x * disp.px_per_mm, disp.apex_y + z * disp.px_per_mm
            ix, iy = int(px), int(py)
            if 0 <= iy < disp.height and 0 <= ix < disp.width and conv.mask[iy, ix]:
                nodules.append([round(px, 1), round(py, 1), round(r * disp.px_per_mm, 1)])
    return nodules
