"""Benchmark of the synthetic cohort generator (results in docs/synth.md).

Measures, on a default cohort (100 patients x 10 frames, seed 0, prevalence 0.36):
- wall time of ``make_cohort`` (acceptance: under 5 minutes on 2 cores);
- realism: in-cone histogram and speckle grain against the real pydicom-data clips;
- the paper's brightness-threshold baseline (acceptance: accuracy <= 0.75 at 190/200/210/220);
- dciodvfy errors over every file written (when dicom3tools is installed).

And, on its own (``--contrast N``: N hearts per grade, no cohort), how visible a nodule is on screen: on one
rendered diastolic short-axis frame per heart, the envelope peak over the brightest nodule minus the 90th
percentile of the leaflets' envelope elsewhere in the valve box (dB), the same at a random leaflet spot (no
nodule: the speckle's own peaks), and the nodule against the 99th percentile of the whole valve box.

And, on its own (``--real-dev DIR``: no default cohort), realism beyond brightness against real frames: small cohorts
of both anatomies (``classic``, ``realistic``; ``--patients``, default here 12) and the real frames of DIR (e.g.
/work/shared/real-dev, read only) are ingested as a user would; on the standard frames, inside each frame's cone,
the brightness and grain statistics above plus speckle SNR, grey-level co-occurrence (contrast, homogeneity,
correlation at 4 px) and the anatomy's structure length (autocorrelation 1/e radius); per anatomy the medians and a
hand-made feature distance to the real frames (``realism.feature_distance``: |median difference| in units of the real
frames' spread, per feature, and their mean).

Run:  .venv/bin/python benchmarks/bench_synth.py [--patients 100] [--seed 0] [--out DIR] [--json FILE]
      .venv/bin/python benchmarks/bench_synth.py --contrast 60
      .venv/bin/python benchmarks/bench_synth.py --real-dev /work/shared/real-dev [--patients 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def dciodvfy_errors(out_dir: Path) -> dict:
    exe = shutil.which("dciodvfy")
    if exe is None:
        return {"available": False}
    files = sorted(out_dir.rglob("*.dcm"))
    n_err = n_warn = bad = 0
    messages: dict[str, int] = {}
    for f in files:
        res = subprocess.run([exe, str(f)], capture_output=True, text=True)
        text = res.stdout + res.stderr
        errs = [line for line in text.splitlines() if line.startswith("Error")]
        warns = [line for line in text.splitlines() if line.startswith("Warning")]
        n_err += len(errs)
        n_warn += len(warns)
        bad += bool(errs)
        for line in errs + warns:
            messages[line] = messages.get(line, 0) + 1
    return {"available": True, "files": len(files), "files_with_errors": bad, "errors": n_err,
            "warnings": n_warn, "messages": messages}


def nodule_contrast(n_hearts: int, grades=(1, 2)) -> dict:
    """Nodule contrast on rendered frames (display geometry of the cohort, 'console' layout), per grade."""
    from dataclasses import replace

    import numpy as np

    from echoavc.synth import anatomy as A
    from echoavc.synth import cohort as C
    from echoavc.synth import scanner as S
    from echoavc.synth import screen as V

    def one(heart, seed):
        rng = np.random.default_rng(1000 + seed)
        acq = C._acquisition(rng, "psax_av")
        pose = C._pose(rng, "psax_av", heart, acq.depth_mm)
        half = acq.sector_deg / 2
        disp = V.sector_display(V.LAYOUTS["console"], acq.depth_mm, half, None)
        grid = S.polar_grid(acq)
        x0, sh, sw = A.scene_geometry(acq.depth_mm, half, 0.3)
        tex = A.texture((sh, sw), 0.3, rng)
        r_env = S.envelope_ranges(grid, acq)
        conv = S.ScanConverter(r_env, grid.th_rad, disp)
        scene = A.render("psax_av", heart, pose, 0.7, acq.depth_mm, half, np.random.default_rng(1), tex=tex)
        bare = replace(heart, nodules=())
        a = A.render("psax_av", bare, pose, 0.7, acq.depth_mm, half, np.random.default_rng(1)).echo
        b = A.render("psax_av", replace(bare, leaflet_echo=1e4), pose, 0.7, acq.depth_mm, half,
                     np.random.default_rng(1)).echo
        ep = S.sample_polar(scene.echo, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        ap = S.sample_polar(scene.atten, grid, scene.x0_mm, scene.z0_mm, scene.res_mm)
        env = S.beamform(ep, ap, grid, acq, rng).envelope
        db = conv(20 * np.log10(np.maximum(env, 1e-6)))
        leaf = conv(S.sample_polar(((b - a) > 5e3).astype(np.float32), grid, scene.x0_mm, scene.z0_mm,
                                   scene.res_mm, nearest=True, r_mm=r_env), nearest=True) > 0.5
        box = C.valve_box(scene, grid, acq, conv, disp, pose)
        yy, xx = np.mgrid[0:db.shape[0], 0:db.shape[1]]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        inbox = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
        lat = float(S.beam_fwhm_mm(np.array([70.0]), acq)[0]) * disp.px_per_mm
        near = np.zeros(db.shape, bool)
        peak, r_px = -np.inf, 3.0
        for x, z, r in scene.nodules:
            d = np.hypot(xx + 0.5 - (disp.apex_x + x * disp.px_per_mm), yy + 0.5 - (disp.apex_y + z * disp.px_per_mm))
            near |= d <= r * disp.px_per_mm + lat
            if db[d <= r * disp.px_per_mm + 1.5].max() > peak:
                peak, r_px = float(db[d <= r * disp.px_per_mm + 1.5].max()), r * disp.px_per_mm
        leaf &= inbox & ~near
        if leaf.sum() < 20 or not np.isfinite(peak):
            return None
        ys, xs = np.nonzero(leaf)
        k = np.random.default_rng(seed).integers(len(ys))
        null = float(db[np.hypot(xx - xs[k], yy - ys[k]) <= r_px + 1.5].max())
        p90 = float(np.percentile(db[leaf], 90))
        rest = db[inbox & ~near]
        return peak - p90, null - p90, peak - float(np.percentile(rest, 99)), peak > float(rest.max())

    out = {}
    for g in grades:
        rows = [r for s in range(n_hearts) if (r := one(A.Heart.sample(np.random.default_rng(s), g), s)) is not None]
        c, null, box99, top = (np.array(v, dtype=float) for v in zip(*rows))
        q = lambda v: [round(float(x), 1) for x in np.percentile(v, [25, 50, 75])]  # noqa: E731
        out[f"grade_{g}"] = {"frames": len(rows), "nodule_minus_leaflet_p90_db_q25_50_75": q(c),
                             "random_leaflet_spot_minus_p90_db_q25_50_75": q(null),
                             "share_nodule_over_leaflet_p90_by_6db": round(float((c > 6).mean()), 2),
                             "nodule_minus_box_p99_db_q25_50_75": q(box99),
                             "share_nodule_brightest_in_box": round(float(top.mean()), 2)}
    return out


def real_dev_realism(real_dev: Path, patients: int, seed: int, out: Path, ingested: dict | None = None) -> dict:
    """Realism beyond brightness: both anatomies against the real frames (see the module docstring)."""
    import numpy as np

    from echoavc.ingest import ingest
    from echoavc.synth import realism as R
    from echoavc.synth.cohort import make_cohort

    out.mkdir(parents=True, exist_ok=True)
    key = out / "keys" / "bench.key"
    sets = {}
    ingest([real_dev / "dicom"], out / "real-ingest", key, workers=1, progress=False)
    sets["real_dev"] = R.ingested_stats(out / "real-ingest")
    for anatomy in ("classic", "realistic"):
        if anatomy in (ingested or {}):  # an ingest folder of a cohort made elsewhere (e.g. bench_sim2real's)
            sets[anatomy] = R.ingested_stats(ingested[anatomy], every=4)
            continue
        if not (out / anatomy / "frames.csv").is_file():
            make_cohort(out / anatomy, patients, seed, frames_per_exam=6, workers=1, progress=False, anatomy=anatomy)
        ingest([out / anatomy / "dicom"], out / f"{anatomy}-ingest", key, workers=1, progress=False)
        sets[anatomy] = R.ingested_stats(out / f"{anatomy}-ingest")
    med = {name: {k: round(float(np.nanmedian([r[k] for r in rows])), 3) for k in R.FEATURES}
           for name, rows in sets.items()}
    dist = {name: {k: round(v, 2) for k, v in R.feature_distance(rows, sets["real_dev"]).items()}
            for name, rows in sets.items() if name != "real_dev"}
    return {"frames": {k: len(v) for k, v in sets.items()}, "medians": med, "distance_to_real_dev": dist}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--frames-per-exam", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-dciodvfy", action="store_true")
    ap.add_argument("--contrast", type=int, default=0, help="only the nodule contrast, on N hearts per grade")
    ap.add_argument("--real-dev", type=Path, default=None, help="only realism against these real frames")
    ap.add_argument("--ingested", action="append", default=[], metavar="ANATOMY=DIR",
                    help="with --real-dev: use this ingest folder of a cohort of that anatomy (every 4th frame)")
    args = ap.parse_args()
    if args.real_dev:
        out = args.out or Path(tempfile.mkdtemp(prefix="echoavc_synth_realdev_"))
        patients = args.patients if args.patients != 100 else 12
        res = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "patients": patients, "seed": args.seed,
               **real_dev_realism(args.real_dev, patients, args.seed, out,
                                  dict(x.split("=", 1) for x in args.ingested))}
        text = json.dumps(res, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text)
        return 0
    if args.contrast:
        res = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "hearts_per_grade": args.contrast,
               **nodule_contrast(args.contrast)}
        text = json.dumps(res, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text)
        return 0

    from echoavc.synth import realism as R
    from echoavc.synth.cohort import make_cohort

    out = args.out or Path(tempfile.mkdtemp(prefix="echoavc_synth_bench_"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    t0 = time.perf_counter()
    make_cohort(out, args.patients, args.seed, frames_per_exam=args.frames_per_exam, workers=args.workers,
                progress=True)
    wall = time.perf_counter() - t0
    n_frames = sum(1 for _ in open(out / "frames.csv")) - 1

    ref = R.reference_stats()
    syn = R.cohort_stats(out, every=2)
    realism = {k: {"synthetic_median": m, "accepted_range": list(r), "ok": ok}
               for k, (m, r, ok) in R.check(syn, ref).items()}
    references = {}
    for row in ref:
        references.setdefault(row["reference"], []).append(row)
    ref_summary = {name: R.summarise(rows) for name, rows in references.items()}
    by_view: dict[str, list] = {}
    for row in syn:
        by_view.setdefault(row["view"], []).append(row)
    view_summary = {v: R.summarise(rows) for v, rows in sorted(by_view.items())}

    baseline = R.baseline_accuracy(out, phase="closed")
    baseline_all = R.baseline_accuracy(out, phase=None)
    dvf = {"available": False} if args.skip_dciodvfy else dciodvfy_errors(out)

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cores": cores, "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "patients": args.patients, "frames": n_frames, "seed": args.seed,
        "wall_s": round(wall, 1), "s_per_frame": round(wall / max(n_frames, 1), 3),
        "realism": realism, "reference_summary": ref_summary, "synthetic_by_view": view_summary,
        "baseline_diastole": baseline, "baseline_all_phases": baseline_all, "dciodvfy": dvf,
        "out": str(out),
    }
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        args.json.write_text(text)
    ok = (wall < 300 or args.patients != 100) and all(v["ok"] for v in realism.values()) \
        and all(v["accuracy"] <= 0.75 for v in baseline.values()) \
        and (not dvf.get("available") or dvf["errors"] == 0)
    print("ACCEPTANCE:", "PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
