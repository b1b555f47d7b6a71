"""CPU cost of finding the ultrasound cone, and of predict's whole prepare step, per input file (issue 18).

For every input, with one thread (cv2.setNumThreads(1)), CPU seconds of this process (time.process_time), the
best of --repeat runs:

  cone      find_cone on the frame sample prepare_clip hands it (decoded beforehand: decoding not counted)
  prepare   what predict does before the detector: read_input (open the DICOM or decode the image) and
            prepare() (sample decode, find_cone, the standard frame: mask, grey/colour and overlay checks)

Inputs (made once in --work, reused): synthetic single-frame files and clips (``echoavc.synth``, classic and
realistic anatomy), pydicom-data's ultrasound examples when installed, and every .dcm/.png under --real (e.g.
../shared/real-dev). Goal (issue 18): find_cone <= GOAL_MS CPU per single-frame file and per clip; printed
PASS/FAIL.

``--baseline SRC`` measures the same inputs with another checkout's package (``SRC`` = its ``src`` folder, e.g.
the main branch before a change) in a subprocess, and prints the speed-up and whether the cones are the same
(mask IoU >= 0.99 where that one found a cone, the same refusals).

  PYTHONPATH=src .venv/bin/python benchmarks/bench_cone.py run [--real ../shared/real-dev] [--baseline OLD/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

#: Issue 18: CPU milliseconds of find_cone per single-frame file and per clip, one thread.
GOAL_MS = 8.0
US_EXAMPLES = ("US1_UNCR.dcm", "US1_J2KR.dcm", "examples_ybr_color.dcm", "color3d_jpeg_baseline.dcm",
               "JPGLosslessP14SV1_1s_1f_8b.dcm")


def inputs(work: Path, real: Path | None, quick: bool) -> list[Path]:
    from predict_setup import cohort

    files = []
    files += cohort(work / "single", 3 if quick else 8, 801, frames_per_exam=1)
    files += cohort(work / "clips", 1 if quick else 2, 802, frames_per_exam=30, distractor_fraction=0.0)
    files += cohort(work / "realistic", 1 if quick else 3, 803, frames_per_exam=4, anatomy="realistic",
                    phase_variety=True)
    try:
        from pydicom.data import get_testdata_file

        files += [Path(p) for p in (get_testdata_file(n, download=False) for n in US_EXAMPLES) if p]
    except ImportError:
        pass
    if real is not None:
        files += sorted(p for p in real.rglob("*") if p.suffix.lower() in (".dcm", ".png"))
    return files


def measure(files: list[Path], repeat: int) -> dict:
    """{file: {kind, cone (dict or "refused: ..."), cone_ms, prepare_ms}} with this interpreter's echoavc."""
    import cv2

    cv2.setNumThreads(1)
    from echoavc.cone import find_cone
    from echoavc.dicom.read import tissue_regions
    from echoavc.errors import EchoAVCError
    from echoavc.screening.clips import read_input
    from echoavc.settings import IngestSettings

    ing = IngestSettings()
    out = {}
    for path in files:
        data = path.read_bytes()

        def prepare():
            made, _, _ = read_input(data, str(path), ing)
            return made()

        try:
            prep = prepare()
        except EchoAVCError as exc:
            out[str(path)] = {"kind": "refused", "cone": f"refused: {exc}", "cone_ms": None, "prepare_ms": None}
            continue
        sample = prep.sample
        regions = tissue_regions(prep.clip.dataset) if prep.clip is not None else None
        n = 1 if prep.clip is None else prep.clip.n_frames
        h, w = sample.shape[1:3]
        kind = f"{'single' if n == 1 else 'clip'} {h}x{w}"
        cone_s = prep_s = float("inf")
        for _ in range(repeat):
            t = time.process_time()
            cone = find_cone(sample, regions, ing.cone)
            cone_s = min(cone_s, time.process_time() - t)
            t = time.process_time()
            prepare()
            prep_s = min(prep_s, time.process_time() - t)
        out[str(path)] = {"kind": kind, "shape": [h, w], "cone": cone.to_dict(), "cone_ms": cone_s * 1e3,
                          "prepare_ms": prep_s * 1e3}
    return out


def baseline(src: Path, files: list[Path], work: Path, repeat: int) -> dict:
    """measure() with another checkout's echoavc, in a subprocess."""
    lst = work / "files.json"
    lst.write_text(json.dumps([str(f) for f in files]))
    env = dict(os.environ, PYTHONPATH=f"{src.resolve()}{os.pathsep}{Path(__file__).parent}")
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "measure", "--files", str(lst), "--repeat",
                    str(repeat), "--json", str(work / "baseline.json")], env=env, check=True, cwd="/")
    return json.loads((work / "baseline.json").read_text())


def best_of(kept: dict | None, new: dict) -> dict:
    """Per file the lower CPU figures of two measurements (the cones are the same: same code, same input)."""
    if kept is None:
        return new
    for f, r in new.items():
        for key in ("cone_ms", "prepare_ms"):
            if r[key] is not None and kept[f][key] is not None:
                kept[f][key] = min(kept[f][key], r[key])
    return kept


def summary(res: dict) -> dict:
    by = defaultdict(list)
    for r in res.values():
        if r["cone_ms"] is not None:
            by[r["kind"].split()[0]].append(r)
            by[r["kind"]].append(r)
    return {k: (len(v), float(np.mean([r["cone_ms"] for r in v])), float(np.mean([r["prepare_ms"] for r in v])))
            for k, v in sorted(by.items())}


def same_cones(ours: dict, base: dict) -> list[str]:
    """Differences between two measurements' cones: '' list when every cone agrees (mask IoU >= 0.99)."""
    from echoavc.cone import Cone, mask_iou

    diffs = []
    for f, r in ours.items():
        b = base.get(f)
        if b is None:
            continue
        if isinstance(r["cone"], str) or isinstance(b["cone"], str):
            if r["cone"] != b["cone"]:
                diffs.append(f"{Path(f).name}: {str(b['cone'])[:70]} -> {str(r['cone'])[:70]}")
            continue
        shape = r["shape"]
        a, c = Cone.from_dict(r["cone"]), Cone.from_dict(b["cone"])
        iou = mask_iou(a.mask(shape), c.mask(shape))
        if iou < 0.99 or (a.kind, a.source) != (c.kind, c.source):
            diffs.append(f"{Path(f).name}: IoU {iou:.4f}, {c.kind}/{c.source} -> {a.kind}/{a.source}")
    return diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "measure"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-cone"))
    ap.add_argument("--real", type=Path, default=None, help="also every .dcm/.png below this folder")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's src folder to compare with")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--files", type=Path, help=argparse.SUPPRESS)  # measure: a JSON list of files
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    if a.mode == "measure":
        res = measure([Path(f) for f in json.loads(a.files.read_text())], a.repeat)
        a.json.write_text(json.dumps(res))
        return 0

    if a.real is not None and not a.real.is_dir():
        # (a missing folder used to be skipped silently, and the run then measured 16 inputs fewer)
        ap.error(f"--real {a.real}: no such folder")
    a.work.mkdir(parents=True, exist_ok=True)
    files = inputs(a.work, a.real, a.quick)
    print(f"{len(files)} inputs; CPU ms per file, one thread, best of {a.repeat}")
    # ours and the baseline alternate (two rounds, the best per file kept): the load of a shared machine
    # then weighs on both alike
    ours = base = None
    for _ in range(2 if a.baseline is not None else 1):
        ours = best_of(ours, measure(files, a.repeat))
        if a.baseline is not None:
            base = best_of(base, baseline(a.baseline, files, a.work, a.repeat))
    ours_s = summary(ours)
    base_s = summary(base) if base else {}
    head = f"  {'input':22s} {'n':>3s} {'cone ms':>8s} {'prepare ms':>10s}"
    print(head + ("   baseline cone / prepare" if base else ""))
    for k, (n, c, p) in ours_s.items():
        line = f"  {k:22s} {n:3d} {c:8.1f} {p:10.1f}"
        if k in base_s:
            _, bc, bp = base_s[k]
            line += f"   {bc:7.1f} / {bp:7.1f} ms  (x{bc / c:.1f} / x{bp / p:.1f})"
        print(line)
    refused = [f for f, r in ours.items() if r["cone_ms"] is None]
    if refused:
        print(f"  refused: {len(refused)} ({'; '.join(Path(f).name for f in refused[:5])})")
    ok = True
    for k in ("single", "clip"):
        if k in ours_s:
            got = ours_s[k][1]
            good = got <= GOAL_MS
            ok &= good
            print(f"{'PASS' if good else 'FAIL'}  find_cone, {k}: {got:.1f} ms CPU per file (goal <= {GOAL_MS:.0f})")
    if base:
        diffs = same_cones(ours, base)
        ok &= not diffs
        print(f"{'PASS' if not diffs else 'FAIL'}  the same cones as the baseline on {len(ours)} inputs "
              f"(mask IoU >= 0.99, same refusals)" + "".join(f"\n      {d}" for d in diffs))
    print("PASS  all" if ok else "FAIL  all")
    if a.json:
        a.json.write_text(json.dumps({"ours": ours, "baseline": base, "summary": ours_s}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
