"""The Ray engine against the local engine (issue 19): the same files screened by ``echoavc predict``'s function
with the local engine (1 and 2 processes) and on a local Ray instance (1 and 2 workers).

Goal (PASS/FAIL): every Ray run's frames.csv, exams.csv and failures.csv are byte-identical to the local
engine's (1 process). Throughput is printed beside it, in files/s and frames/s of wall time for the whole
``predict`` call (bundle loading, worker start, heat maps and outputs included, as a user waits for them); it is
not part of the goal, because this machine's 2 cores are shared (the load average is printed with each line).

Inputs: a synthetic cohort (``echoavc.synth``) and bench_predict.py's untrained, same-architecture bundle with
valve_conf = decide_conf = 0 (yolov5s at 640 + mobilenetv3_large at 224: every frame takes the whole path).

  .venv/bin/python benchmarks/bench_ray.py [--work /tmp/bench-ray] [--patients 4] [--frames-per-exam 24] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# a Ray on this machine only (every socket on 127.0.0.1), so no token; read by Ray on import, hence first
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).parent))  # the parts beside this script

from predict_setup import cohort, load, log, make_bundles  # noqa: E402

COMPARED = ("frames.csv", "exams.csv", "failures.csv")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-ray"))
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--frames-per-exam", type=int, default=24)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import ray

    from echoavc.predict import predict

    files = cohort(args.work / "cohort", args.patients, seed=19, frames_per_exam=args.frames_per_exam,
                   exams_per_patient=1)
    bundle = make_bundles(args.work)["forced"]
    runs = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]
    rows, outs = [], {}
    # one Ray instance for the Ray runs (started before them, not timed: a cluster is up before a batch)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        for engine, workers in runs:
            out = args.work / f"out-{engine}-{workers}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            t = time.perf_counter()
            rep = predict([args.work / "cohort" / "dicom"], bundle, out, workers=workers, engine=engine,
                          threads=workers if engine == "local" else 0, progress=False)
            wall = time.perf_counter() - t
            outs[(engine, workers)] = out
            row = {"engine": engine, "workers": workers, "files": len(files), "frames": len(rep.frames),
                   "seconds": round(wall, 1), "files_per_s": round(len(files) / wall, 3),
                   "frames_per_s": round(len(rep.frames) / wall, 2), "load": load()}
            rows.append(row)
            log(f"{engine} x{workers}: {row['files']} files, {row['frames']} frames in {row['seconds']} s = "
                f"{row['files_per_s']} files/s, {row['frames_per_s']} frames/s")
    finally:
        ray.shutdown()
    ref = outs[("local", 1)]
    same = {f"{e}x{w}": all((outs[(e, w)] / n).read_bytes() == (ref / n).read_bytes() for n in COMPARED)
            for e, w in runs}
    print("| engine | workers | files | frames | wall s | files/s | frames/s | load (1, 5, 15 min) | outputs = local x1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['workers']} | {r['files']} | {r['frames']} | {r['seconds']} | {r['files_per_s']} "
              f"| {r['frames_per_s']} | {r['load']} | {same[r['engine'] + 'x' + str(r['workers'])]} |")
    ok = all(same.values())
    print(("PASS" if ok else "FAIL") + ": Ray runs' frames.csv, exams.csv and failures.csv identical to the local "
          f"engine's ({sum(same.values())}/{len(same)} runs)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "identical": same, "pass": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
