"""Benchmark of the synthetic cohort generator (results in docs/synth.md).

Measures, on a default cohort (100 patients x 10 frames, seed 0, prevalence 0.36):
- wall time of ``make_cohort`` (acceptance: under 5 minutes on 2 cores);
- realism: in-cone histogram and speckle grain against the real pydicom-data clips;
- the paper's brightness-threshold baseline (acceptance: accuracy <= 0.75 at 190/200/210/220);
- dciodvfy errors over every file written (when dicom3tools is installed).

Run:  .venv/bin/python benchmarks/bench_synth.py [--patients 100] [--seed 0] [--out DIR] [--json FILE]
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--frames-per-exam", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-dciodvfy", action="store_true")
    args = ap.parse_args()

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

    baseline = R.baseline_accuracy(out, phase="diastole")
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
