"""``echoavc predict`` as a subprocess for bench_predict.py: wall time, peak RSS, per-stage shares from its
resume records, and onnxruntime's thread spinning switched off or on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


#: Runs the command as its child and writes the child's peak RSS (KiB). A child forked from this (large) process
#: would report this process's RSS as its own peak (Linux carries the pre-exec high-water mark over), so the
#: command is started from a small launcher instead.
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)")

#: ``echoavc`` with onnxruntime's spinning thread pool off (a benchmark-only patch: predict does not do this)
NO_SPIN_CLI = ("import sys; sys.argv = ['echoavc'] + sys.argv[1:]; "
               "sys.path.insert(0, %r); import bench_predict; bench_predict.ort_spinning(False); "
               "from echoavc.cli import main; main()")


def run_measured(cmd: list[str], rss_file: Path) -> tuple[int, float, int, str, str]:
    """(exit code, wall seconds, peak RSS of the command in MiB, stdout, stderr)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", LAUNCHER, str(rss_file), *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    try:
        rss = int(rss_file.read_text()) // 1024
    except (OSError, ValueError):
        rss = -1
    return p.returncode, wall, rss, p.stdout, p.stderr


_ORIGINAL_SESSION = None


def ort_spinning(on: bool) -> None:
    """Make every onnxruntime session created from now on spin (its default) or not. Benchmark-only: it shows
    what ``session.intra_op.allow_spinning = 0`` would change in ``predict``."""
    import onnxruntime as ort

    global _ORIGINAL_SESSION
    if _ORIGINAL_SESSION is None:
        _ORIGINAL_SESSION = ort.InferenceSession
    if on:
        ort.InferenceSession = _ORIGINAL_SESSION
        return

    class NoSpin(_ORIGINAL_SESSION):
        def __init__(self, path, sess_options=None, *a, **k):
            opts = sess_options or ort.SessionOptions()
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            super().__init__(path, opts, *a, **k)

    ort.InferenceSession = NoSpin


def cli_predict(bundle_dir: Path, src: Path, out: Path, backend: str, extra: list[str] | None = None,
                spinning: bool = True) -> dict:
    """``echoavc predict`` as a subprocess into a fresh folder (nothing resumed): wall time, peak RSS, and the
    per-stage seconds from its resume records (``OUT/.state/*.json`` hold each clip's ``seconds``)."""
    shutil.rmtree(out, ignore_errors=True)
    args = ["predict", str(src), "--model", str(bundle_dir), "--out", str(out), "--backend", backend,
            "--no-progress", *(extra or [])]
    head = [sys.executable, "-m", "echoavc.cli"] if spinning else \
        [sys.executable, "-c", NO_SPIN_CLI % str(Path(__file__).resolve().parent)]
    rc, wall, rss, so, se = run_measured(head + args, out.with_name(out.name + ".rss"))
    rec = {"command": " ".join(["echoavc", *args]) + ("" if spinning else "  [onnxruntime spinning off]"),
           "rc": rc, "wall_s": round(wall, 2), "peak_rss_mib": rss}
    if rc != 0:
        rec["stderr"] = se[-2000:]
        rec["stdout"] = so[-500:]
        return rec
    stages: dict = {}
    from echoavc.predict import HEAT_MAP_FILE

    frames = clips = 0
    for st in (out / ".state").glob("*.json"):
        d = json.loads(st.read_text())
        if st.name == HEAT_MAP_FILE:  # the second pass: Grad-CAM on each exam's driving frame
            stages["heat_maps"] = float(d.get("seconds", 0.0))
            continue
        if d.get("status") != "ok":
            continue
        clips += 1
        sec = d["clip"].get("seconds", {})
        frames += len(d["clip"]["frames"])
        for k in ("prepare", "decode_standardise", "models", "overlays"):
            stages[k] = stages.get(k, 0.0) + float(sec.get(k, 0.0))
    screened = sum(stages.values())
    rec.update({"files": clips, "frames": frames, "s_per_frame_wall": round(wall / max(frames, 1), 4),
                "screening_s": round(screened, 2),
                "startup_and_outputs_s": round(wall - screened, 2),
                "stages_s": {k: round(v, 2) for k, v in stages.items()},
                "shares_of_wall": {**{k: round(v / wall, 3) for k, v in stages.items()},
                                   "startup_report_other": round((wall - screened) / wall, 3)},
                "stdout": so.strip().splitlines()[-1:] if so.strip() else []})
    return rec
