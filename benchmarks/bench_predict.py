"""End-to-end screening speed on CPU (DICOM in, decision out), against the glue a user would write (issue 7).

Everything below is measured in one run, on synthetic DICOM exams (``echoavc.synth``):

  single   single-frame DICOM files
  clips    multi-frame clips (aortic-valve short axis, 60 frames by default)
  day      a clinic day: 30 exams x 10 images, through ``echoavc predict`` as a subprocess (wall time, peak RSS,
           per-stage shares from its resume records), and the glue on the same files
  trained  (with --bundle) a trained bundle: its speed, and whether locating the valve on 4 frames per clip instead
           of every frame changes any exam decision (agreement, max |dP|) and the held-out metrics
  goals    (``--parts goals --bundle B``) issue 18's goals on a trained bundle with its default screening against
           the glue on the same networks, each printed PASS or FAIL (``predict_goals.py``)

The glue ("straightforward alternative"): for each file, pydicom ``dcmread`` + ``pixel_array``; per frame a cv2
letterbox to 640, Ultralytics ``YOLO.predict(frame, imgsz=640)`` one frame at a time, crop of the top box (the
centre when there is none), resize to 224, timm ``mobilenetv3_large_100`` forward one crop at a time
(eager, inference mode).

Same architectures on both sides: the speed comparison uses an UNTRAINED bundle built here (yolov5s at 640 as
Ultralytics builds it, i.e. YOLOv5su; mobilenetv3_large_100, avg pooling, crop 224), and the glue runs the very
same detector checkpoint. An untrained detector finds no valve, which would let our pipeline skip the classifier,
so the timed bundle has ``valve_conf = decide_conf = 0``: every frame gets a box and goes through the classifier,
as in the glue. (A bundle with the default thresholds is also built, to show that path.)

Run (2-core CPU machine, quiet: a default run takes 11-13 minutes, --quick about 3):

  .venv/bin/python benchmarks/bench_predict.py run [--work /tmp/bench-predict] [--json out.json]
        [--bundle /tmp/demo1/model --heldout /tmp/demo1/heldout-900001] [--quick]
  .venv/bin/python benchmarks/bench_predict.py run --parts goals --bundle BUNDLE     # issue 18's goals
  .venv/bin/python benchmarks/bench_predict.py build --work DIR     # only make the inputs and the bundles

Inputs and bundles are kept in --work and reused by the next run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # the parts beside this script

from predict_cli import cli_predict, ort_spinning  # noqa: E402
from predict_glue import Glue, run_glue, summarise  # noqa: E402
from predict_setup import cohort, load, log, make_bundles, n_frames  # noqa: E402

from echoavc.demo import HELDOUT_SEED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_BUNDLE = Path("/tmp/demo1/model")
#: what `echoavc demo --out /tmp/demo1` writes (held-out patients named by their evaluation seed, the default)
DEMO_HELDOUT = Path(f"/tmp/demo1/heldout-{HELDOUT_SEED}")


# ---------------------------------------------------------------- machine


def hardware() -> dict:
    """The record of the machine, plus the onnxruntime version."""
    import onnxruntime

    from echoavc.runtime import machine

    return {**machine(), "onnxruntime": onnxruntime.__version__}


# ---------------------------------------------------------------- ours, in process (per-stage times)


class Timed:
    """A callable or object whose calls are timed into ``acc[key]`` (attributes pass through)."""

    def __init__(self, fn, acc: dict, key: str):
        self._fn, self._acc, self._key = fn, acc, key

    def __call__(self, *a, **k):
        t = time.perf_counter()
        try:
            return self._fn(*a, **k)
        finally:
            self._acc[self._key] = self._acc.get(self._key, 0.0) + time.perf_counter() - t

    def __getattr__(self, name):
        return getattr(self._fn, name)


def instrument(scr, acc: dict) -> None:
    """Split the ``models`` stage: detector (letterbox + forward + NMS), its forward, crops, classifier."""
    scr.detector.top = Timed(scr.detector.top, acc, "detector")
    scr.detector.backend = Timed(scr.detector.backend, acc, "detector_forward")
    scr.classifier.prepare = Timed(scr.classifier.prepare, acc, "crop")
    scr.classifier.predict_proba = Timed(scr.classifier.predict_proba, acc, "classifier")


class Ours:
    """Our pipeline in process, file by file through ``screen_input`` (what ``predict`` runs per input), with the
    ``models`` stage split into detector / crop / classifier."""

    def __init__(self, label: str, bundle_dir: Path, backend: str, out_dir: Path, first: Path,
                 overlays: str = "none", spinning: bool = True, **overrides):
        from echoavc.bundle import load_bundle, with_screening
        from echoavc.predict import Screener

        self.label, self.out_dir, self.overlays = label, out_dir, overlays
        self.bundle = load_bundle(bundle_dir)
        self.settings = with_screening(self.bundle, **overrides)
        ort_spinning(spinning)
        try:
            self.scr = Screener(self.bundle, backend, self.settings)
        finally:
            ort_spinning(True)
        self.acc: dict = {}
        instrument(self.scr, self.acc)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.screen(first)  # warm-up (and Grad-CAM's PyTorch model, when overlays are on)
        self.failures: list[tuple[str, str]] = []

    def screen(self, path: Path):
        from echoavc.dicom.read import sha256_bytes
        from echoavc.predict import screen_input

        data = path.read_bytes()
        return screen_input(self.scr, data, str(path), sha256_bytes(data), self.out_dir, self.overlays)

    def run(self, files: list[Path]) -> dict:
        from echoavc.predict import exam_results

        self.acc.clear()
        stages = dict.fromkeys(("prepare", "decode_standardise", "models", "overlays"), 0.0)
        clips = []
        t0 = time.perf_counter()
        from echoavc.errors import EchoAVCError

        self.failures = []
        for f in files:
            try:
                r = self.screen(f)  # reading the file and hashing it are in "other"
            except EchoAVCError as exc:  # reported and skipped, as predict does
                self.failures.append((f.name, exc.reason))
                continue
            clips.append(r)
            for k in stages:
                stages[k] += float(r.seconds.get(k, 0.0))
        total = time.perf_counter() - t0
        frames = sum(len(c.frames) for c in clips)
        models = stages.pop("models")
        acc = self.acc
        det, clf, crop = acc.get("detector", 0.0), acc.get("classifier", 0.0), acc.get("crop", 0.0)
        stages.update({"detector": det, "crop": crop, "classifier": clf,
                       "models_other": max(models - det - clf - crop, 0.0)})
        rec = summarise(self.label, total, frames, stages)
        rec["forward_s"] = {"detector": round(acc.get("detector_forward", 0.0), 3)}
        rec["backend"] = self.scr.backend
        rec["settings"] = {k: getattr(self.settings, k) for k in ("valve_conf", "decide_conf", "detect_frames",
                                                                  "batch")}
        rec["statuses"] = {}
        for c in clips:
            for fr in c.frames:
                rec["statuses"][fr.status] = rec["statuses"].get(fr.status, 0) + 1
        rec["failures"] = list(self.failures)
        rec["exams"] = exam_results(clips, self.bundle.exam_threshold, self.settings.exam_aggregate)
        return rec


def rounds(variants: list, files: list[Path], repeats: int) -> list[dict]:
    """Each variant over ``files``, ``repeats`` times, interleaved (a busy machine slows all alike); per variant
    the fastest pass, with every pass's s/frame."""
    runs: list[list[dict]] = [[] for _ in variants]
    for r in range(repeats):
        for i, v in enumerate(variants):
            runs[i].append(v.run(files) if isinstance(v, Ours) else v(files))
            log(f"  pass {r + 1}/{repeats} {runs[i][-1]['label'][:60]}: {runs[i][-1]['s_per_frame']:.4f} s/frame")
    out = []
    for rs in runs:
        best = min(rs, key=lambda x: x["seconds"])
        best["passes_s_per_frame"] = [x["s_per_frame"] for x in rs]
        out.append(best)
    return out


# ---------------------------------------------------------------- accuracy parity (trained bundle)


def compare_exams(a: list[dict], b: list[dict]) -> dict:
    ea, eb = {e["exam_id"]: e for e in a}, {e["exam_id"]: e for e in b}
    common = sorted(set(ea) & set(eb))
    same = sum(ea[k]["decision"] == eb[k]["decision"] for k in common)
    dp = [abs(ea[k]["probability"] - eb[k]["probability"]) for k in common
          if ea[k]["probability"] is not None and eb[k]["probability"] is not None]
    return {"exams": len(common), "same_decision": same, "max_abs_dp": round(max(dp), 5) if dp else None,
            "mean_abs_dp": round(float(np.mean(dp)), 5) if dp else None}


def trained_part(bundle: Path, heldout: Path | None, work: Path, args) -> dict:
    from echoavc.bundle import load_bundle
    from echoavc.demo import evaluate_exams, heldout_truth

    b = load_bundle(bundle)
    out = {"bundle": str(bundle), "detector": b.meta.get("detector", {}).get("model_name"),
           "detector_imgsz": b.meta.get("detector", {}).get("imgsz"),
           "classifier": b.meta.get("classifier"), "exam_threshold": b.exam_threshold,
           "screening": asdict(b.screening), "cohorts": {}}
    sets = []
    if heldout is not None and (heldout / "labels.csv").is_file():
        sets.append(("demo_heldout", heldout))
    # long clips, to give the detect_frames speed-up something to skip (the demo's clips are 1-5 frames)
    n_pat = 4 if args.quick else 12
    cohort(work / "inputs" / "parity_clips", n_pat, 909, frames_per_exam=30, distractor_fraction=0.0, prevalence=0.5)
    sets.append(("long_clips", work / "inputs" / "parity_clips"))
    backends = ("torch", "onnx") if b.has_onnx else ("torch",)
    df = args.detect_frames
    for name, cdir in sets:
        files = sorted((cdir / "dicom").rglob("*.dcm"))
        truth = heldout_truth(cdir)
        log(f"trained bundle on {name}: {len(files)} files")
        first = next(f for f in files if "corrupt" not in f.name)
        variants = [Ours(f"trained {be} df{d}", bundle, be, work / "scratch" / f"trained_{name}_{be}_{d}", first,
                         detect_frames=d) for be in backends for d in (0, df)]
        runs = {v.label.split(" ", 1)[1]: r for v, r in zip(variants, rounds(variants, files, 1))}
        for r in runs.values():
            ev = evaluate_exams(r["exams"], truth, b.exam_threshold)
            r["evaluation"] = {k: ev.get(k) for k in ("exams", "undetermined", "agreement", "auroc", "recall",
                                                      "specificity")}
        res = {"files": len(files), "frames": runs[f"{backends[0]} df0"]["frames"],
               "runs": {k: {kk: v[kk] for kk in ("s_per_frame", "shares", "statuses", "evaluation", "failures")}
                        for k, v in runs.items()}, "parity": {}}
        for be in backends:
            res["parity"][f"{be}: detect_frames 0 vs {df}"] = compare_exams(runs[f"{be} df0"]["exams"],
                                                                           runs[f"{be} df{df}"]["exams"])
        if b.has_onnx:
            res["parity"]["detect_frames 0: torch vs onnx"] = compare_exams(runs["torch df0"]["exams"],
                                                                           runs["onnx df0"]["exams"])
        out["cohorts"][name] = res
        del variants
    return out


# ---------------------------------------------------------------- the run


def cmd_build(args) -> dict:
    work = Path(args.work)
    q = args.quick
    inputs = {
        "single": cohort(work / "inputs" / "single", 6 if q else 24, 701, frames_per_exam=1, prevalence=0.5),
        "clips": cohort(work / "inputs" / "clips", 1 if q else 3, 702, frames_per_exam=args.clip_frames,
                        distractor_fraction=0.0, zoom_fraction=0.0, prevalence=0.5),
        "day": cohort(work / "inputs" / "day", 4 if q else 30, 703, frames_per_exam=10),
    }
    bundles = make_bundles(work) if set(args.parts.split(",")) - {"goals"} else {}
    return {"inputs": inputs, "bundles": bundles}


def cmd_run(args) -> dict:
    from echoavc import runtime

    runtime.configure()
    runtime.all_cores()
    work = Path(args.work)
    t_start = time.perf_counter()
    doc: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "hardware": hardware(), "load_start": load(),
                 "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
                 "repeats": args.repeats}
    log(f"hardware {doc['hardware']}")
    built = cmd_build(args)
    inputs, bundles = built["inputs"], built["bundles"]
    doc["inputs"] = {k: {"files": len(v), "frames": n_frames(v)} for k, v in inputs.items()}
    parts = set(args.parts.split(","))
    res: dict = {}
    if "goals" in parts:
        from predict_goals import goals_part

        bundle = Path(args.bundle) if args.bundle else DEMO_BUNDLE
        res["goals"] = goals_part(bundle, inputs, {k: v["frames"] for k, v in doc["inputs"].items()}, work,
                                  args.repeats)
    if not parts - {"goals"}:
        doc["results"], doc["load_end"] = res, load()
        doc["total_s"] = round(time.perf_counter() - t_start, 1)
        report(doc)
        return doc
    doc["models"] = {"detector": "yolov5su (Ultralytics yolov5s.yaml), 640, untrained, 1 class",
                     "classifier": "mobilenetv3_large_100, avg pooling, 224, untrained",
                     "timed_bundle_screening": "valve_conf = decide_conf = 0 (every frame classified)"}
    scratch = work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    forced = bundles["forced"]
    df = args.detect_frames

    log("glue: loading Ultralytics YOLO + timm")
    glue = Glue(bundles["pt"])

    def glue_run(files):
        return run_glue(glue, files)

    # single-frame files
    files = inputs["single"]
    if "single" in parts:
        log(f"single-frame files: {len(files)}")
    variants = [] if "single" not in parts else [glue_run,
                Ours("ours torch", forced, "torch", scratch / "single_torch", files[0]),
                Ours("ours onnx", forced, "onnx", scratch / "single_onnx", files[0]),
                Ours("ours onnx, onnxruntime spinning off*", forced, "onnx", scratch / "single_onnx_ns", files[0],
                     spinning=False),
                Ours("ours onnx, default thresholds (no valve found: classifier skipped)", bundles["default"], "onnx",
                     scratch / "single_default", files[0])]
    if variants:
        res["single"] = rounds(variants, files, args.repeats)
    del variants

    # multi-frame clips
    files = inputs["clips"]
    if "clips" in parts:
        log(f"clips: {len(files)} files, {doc['inputs']['clips']['frames']} frames")
    variants = [glue_run]
    for backend in ("torch", "onnx") if "clips" in parts else ():
        for d in (0, df):
            variants.append(Ours(f"ours {backend}, detect_frames {d}", forced, backend,
                                 scratch / f"clips_{backend}_{d}", files[0], detect_frames=d))
    if "clips" in parts:
        variants.append(Ours(f"ours onnx, detect_frames {df}, onnxruntime spinning off*", forced, "onnx",
                             scratch / f"clips_onnx_{df}_ns", files[0], detect_frames=df, spinning=False))
        res["clips"] = rounds(variants, files, args.repeats)
    del variants

    # clinic day: the glue in process, ``echoavc predict`` as a subprocess (defaults: overlays with Grad-CAM and
    # the HTML report; torch and onnx; peak RSS)
    day_src = work / "inputs" / "day" / "dicom"
    if "day" in parts:
        log(f"clinic day: {len(inputs['day'])} files, {doc['inputs']['day']['frames']} frames")
        day = {"glue": run_glue(glue, inputs["day"])}
        log(f"  glue: {day['glue']['s_per_frame']:.4f} s/frame")
    glue = None  # free the glue's models before the subprocesses
    for key, backend, extra, spin in (("cli_onnx", "onnx", [], True), ("cli_torch", "torch", [], True),
                                      (f"cli_onnx_df{df}", "onnx", ["--detect-frames", str(df)], True),
                                      ("cli_onnx_nospin*", "onnx", [], False)) if "day" in parts else ():
        day[key] = r = cli_predict(forced, day_src, scratch / f"day_{key.rstrip('*')}", backend, extra, spin)
        log(f"  {r['command']}: rc {r['rc']}, {r['wall_s']} s, peak RSS {r['peak_rss_mib']} MiB")
    if "day" in parts:
        res["day"] = day

    # a trained bundle (optional)
    bundle = Path(args.bundle) if args.bundle else (DEMO_BUNDLE if (DEMO_BUNDLE / "bundle.json").is_file() else None)
    heldout = Path(args.heldout) if args.heldout else (DEMO_HELDOUT if bundle == DEMO_BUNDLE else None)
    if "trained" not in parts:
        pass
    elif bundle is not None:
        try:
            res["trained"] = trained_part(bundle, heldout, work, args)
        except Exception as exc:  # noqa: BLE001 (a refused or broken bundle must not lose the numbers above)
            import traceback

            log(f"trained bundle part failed: {type(exc).__name__}: {exc}")
            res["trained"] = {"bundle": str(bundle), "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc()[-3000:]}
    else:
        log("no trained bundle (--bundle, or /tmp/demo1/model): accuracy parity skipped")
    doc["results"] = res
    doc["load_end"] = load()
    doc["total_s"] = round(time.perf_counter() - t_start, 1)
    report(doc)
    return doc


# ---------------------------------------------------------------- printing


def report(doc: dict) -> None:
    res = doc["results"]
    h = doc["hardware"]
    print()
    print(f"{h['cpu']}, {h['cores']} cores, torch {h['torch']}, onnxruntime {h['onnxruntime']}; "
          f"load average {doc['load_start']} at start, {doc['load_end']} at end; total {doc['total_s']} s")
    if "goals" in res:
        from predict_goals import print_goals

        print_goals(res["goals"])
        if set(res) == {"goals"}:
            return
    print(f"models: {doc['models']}")
    keys = ("prepare", "decode", "decode_standardise", "letterbox", "detector", "crop", "classifier",
            "models_other", "overlays", "other")

    def table(name, rows):
        glue = rows[0]["s_per_frame"]
        print(f"\n{name}: {rows[0]['frames']} frames")
        print(f"  {'':64s} {'s/frame':>8s} {'vs glue':>8s}  shares")
        for r in rows:
            sh = ", ".join(f"{k} {r['shares'][k]:.0%}" for k in keys if r["shares"].get(k))
            print(f"  {r['label'][:64]:64s} {r['s_per_frame']:8.4f} {glue / r['s_per_frame']:7.2f}x  {sh}")
            if len(r.get("passes_s_per_frame", [])) > 1:
                print(f"  {'':64s} passes: {r['passes_s_per_frame']}")

    if "single" in res:
        table("single-frame DICOM files", res["single"])
    if "clips" in res:
        table("multi-frame clips", res["clips"])
    day = res.get("day") or {}
    g = day.get("glue")
    if g:
        print(f"\nclinic day ({doc['inputs']['day']['files']} files, {doc['inputs']['day']['frames']} frames):")
        print(f"  glue, in process: {g['seconds']:.1f} s ({g['s_per_frame']:.4f} s/frame)")
    for k, r in day.items():
        if k == "glue":
            continue
        if r["rc"] != 0:
            print(f"  {r['command']}: FAILED rc {r['rc']}: {r.get('stderr', '')[-400:]}")
            continue
        sh = ", ".join(f"{kk} {v:.0%}" for kk, v in r["shares_of_wall"].items())
        print(f"  {k}: {r['wall_s']:.1f} s wall ({r['s_per_frame_wall']:.4f} s/frame, "
              f"{g['seconds'] / r['wall_s']:.2f}x the glue), peak RSS {r['peak_rss_mib']} MiB; {sh}")
    print("  * benchmark-only patch: onnxruntime sessions made with session.intra_op.allow_spinning = 0 "
          "(predict does not do this)")
    tr = res.get("trained")
    if tr and tr.get("error"):
        print(f"\ntrained bundle {tr['bundle']}: {tr['error']}")
    elif tr:
        print(f"\ntrained bundle {tr['bundle']}: {tr['detector']} at {tr['detector_imgsz']}, "
              f"{(tr['classifier'] or {}).get('backbone')}")
        for name, c in tr["cohorts"].items():
            print(f"  {name} ({c['files']} files):")
            for k, r in c["runs"].items():
                ev = r["evaluation"]
                a = ev.get("agreement") or {}
                au = ev.get("auroc") or {}
                print(f"    {k:10s} {r['s_per_frame']:.4f} s/frame; exams correct {a.get('correct')}/{a.get('decided')}"
                      f" ({ev.get('undetermined')} undetermined), AUROC {au.get('value') if isinstance(au, dict) else au}")
            for k, p in c["parity"].items():
                print(f"    parity {k}: {p['same_decision']}/{p['exams']} same decision, max |dP| {p['max_abs_dp']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "build"):
        p = sub.add_parser(name)
        p.add_argument("--work", default="/tmp/bench-predict", help="inputs, bundles and outputs (reused)")
        p.add_argument("--quick", action="store_true", help="a 3-minute smoke run (few files, short clips)")
        p.add_argument("--clip-frames", type=int, default=None, help="frames per clip (default 60; quick 20)")
        p.add_argument("--detect-frames", type=int, default=4, help="detect_frames of the fast variant")
        p.add_argument("--bundle", default=None, help="a trained bundle (default /tmp/demo1/model when there)")
        p.add_argument("--heldout", default=None, help="its held-out cohort (default /tmp/demo1/heldout-900001)")
        p.add_argument("--repeats", type=int, default=None, help="passes per variant, interleaved; the fastest "
                       "is reported (default 2; quick 1)")
        p.add_argument("--parts", default="single,clips,day,trained", help="which parts to run (comma list; "
                       "goals: issue 18's goals on the trained --bundle, PASS/FAIL)")
        p.add_argument("--json", default=None, help="write every number here")
    args = ap.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    if args.clip_frames is None:
        args.clip_frames = 20 if args.quick else 60
    if args.quick:
        args.work = args.work.rstrip("/") + "-quick"
    if args.cmd == "build":
        built = cmd_build(args)
        print({k: (len(v) if isinstance(v, list) else v) for k, v in {**built["inputs"], **built["bundles"]}.items()})
        return
    doc = cmd_run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print(f"\n-> {args.json}")


if __name__ == "__main__":
    main()
