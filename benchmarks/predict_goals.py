"""bench_predict.py's ``goals`` part (issue 18): a TRAINED bundle with its default screening, against the glue on
the very same networks, each goal asserted and printed PASS or FAIL.

Frame policy (which frames each side runs the detector on): every kept frame of every file is screened on both
sides; the glue runs its detector and classifier on every frame; ours runs them as its settings say (printed):
the bundle's frame policy (``frames``, closed by default) is read between the models, so where the header or the
ECG trace times a clip the detector runs on the policy's frames only and the classifier never reads a frame
outside it; with ``detect_frames`` 4 frames per clip first, then between any two whose boxes drifted apart.

  cost      s/frame, glue and ours alternated pass by pass (the faster pass each), wall and CPU seconds:
            single-frame files (ours <= 1/2 the glue), multi-frame clips and the clinic day (<= 1/3). On the
            clinic day ours is ``predict()`` in process with its default outputs (overlays, Grad-CAM, report),
            bundle loading included; the glue's models are loaded before its clock starts.
  agree     ours against the float32 PyTorch path (backend torch, every frame located) on all three inputs:
            frame decisions (status and call) >= 99%; every exam further than 0.02 from its threshold the same
  rss       ``echoavc predict`` as a subprocess on the clinic day: peak RSS <= 1.0 GB with --overlays none,
            <= 1.5 GB with its defaults
  workers   the clinic day, ``--workers 2 --threads 1`` against ``--workers 1 --threads 1`` (wall): >= 1.7x
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

from predict_cli import run_measured
from predict_glue import Glue, run_glue
from predict_setup import log

EXAM_MARGIN = 0.02


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn) -> tuple[object, float, float]:
    t, c = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - t, _cpu() - c


def default_settings(bundle):
    """The bundle's screening settings, with the tracking settings at today's defaults where the bundle was made
    before they were (its other settings, thresholds included, as trained)."""
    from echoavc.settings import ScreeningSettings

    s = bundle.screening
    if "track_iou" not in bundle.meta["screening"]:
        d = ScreeningSettings()
        s = replace(s, detect_frames=d.detect_frames, track_iou=d.track_iou)
    return s


class OursInProcess:
    """Our path file by file (``screen_input``), no overlays: the models' and the preparation's cost."""

    def __init__(self, bundle, backend: str, settings, out: Path):
        from echoavc.screening import Screener

        self.scr = Screener(bundle, backend, settings)
        self.out = out

    def run(self, files: list[Path]):
        from echoavc.dicom.read import sha256_bytes
        from echoavc.errors import EchoAVCError
        from echoavc.screening import screen_input

        clips = []
        for f in files:
            data = f.read_bytes()
            try:
                clips.append(screen_input(self.scr, data, str(f), sha256_bytes(data), self.out, "none"))
            except EchoAVCError:
                continue
        return clips


def _cost(name: str, glue: Glue, ours, files: list[Path], frames: int, repeats: int) -> dict:
    """Glue and ours alternated ``repeats`` times; the faster pass of each, wall and CPU."""
    passes = {"glue": [], "ours": []}
    for r in range(repeats):
        _, w, c = _timed(lambda: run_glue(glue, files))
        passes["glue"].append((w, c))
        _, w, c = _timed(lambda: ours(files))
        passes["ours"].append((w, c))
        log(f"  {name} pass {r + 1}: glue {passes['glue'][-1][0] / frames:.4f}, ours {w / frames:.4f} s/frame")
    best = {k: min(v) for k, v in passes.items()}
    return {"frames": frames, "glue_s_per_frame": round(best["glue"][0] / frames, 4),
            "ours_s_per_frame": round(best["ours"][0] / frames, 4),
            "glue_cpu_per_frame": round(best["glue"][1] / frames, 4),
            "ours_cpu_per_frame": round(best["ours"][1] / frames, 4),
            "ratio": round(best["ours"][0] / best["glue"][0], 3),
            "ratio_cpu": round(best["ours"][1] / best["glue"][1], 3),
            "passes": {k: [round(w / frames, 4) for w, _ in v] for k, v in passes.items()}}


def agreement(ref: list, ours: list, exam_threshold: float, aggregate: str) -> dict:
    """Frame decisions (status + call) and exam decisions of ``ours`` against ``ref`` (ClipResults)."""
    from echoavc.screening import exam_results

    rf = {(c.source, f.frame_index): f for c in ref for f in c.frames}
    of = {(c.source, f.frame_index): f for c in ours for f in c.frames}
    same = sum((rf[k].status, rf[k].decision) == (of[k].status, of[k].decision) for k in rf if k in of)
    re = {e["exam_id"]: e for e in exam_results(ref, exam_threshold, aggregate)}
    oe = {e["exam_id"]: e for e in exam_results(ours, exam_threshold, aggregate)}
    exempt, differ = [], []
    for k, e in re.items():
        near = e["probability"] is not None and abs(e["probability"] - exam_threshold) <= EXAM_MARGIN
        if near:
            exempt.append({"exam": k, "p_ref": e["probability"], "p_ours": oe[k]["probability"]})
        elif e["decision"] != oe[k]["decision"]:
            differ.append({"exam": k, "p_ref": e["probability"], "p_ours": oe[k]["probability"]})
    return {"frames": len(rf), "frames_same": same, "frame_agreement": round(same / max(len(rf), 1), 4),
            "exams": len(re), "exams_exempt": exempt, "exams_differing": differ}


def _day_predict(bundle_dir: Path, backend: str, src: Path, out: Path, settings) -> object:
    from echoavc.predict import predict

    shutil.rmtree(out, ignore_errors=True)
    return predict([src], bundle_dir, out, backend=backend, settings=settings, progress=False)


def goals_part(bundle_dir: Path, inputs: dict[str, list[Path]], frames: dict[str, int], work: Path,
               repeats: int) -> dict:
    from echoavc.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    s = default_settings(bundle)
    backend = bundle.backend("auto")
    scratch = work / "scratch" / "goals"
    shutil.rmtree(scratch, ignore_errors=True)
    res: dict = {"bundle": str(bundle_dir), "backend": backend, "settings": asdict(s),
                 "frame_policy": ("every kept frame screened on both sides; the glue runs its detector and classifier "
                                  "on every frame, ours " + (f"on {s.detect_frames} frames per clip first, then between "
                                                             f"located frames whose boxes overlap < {s.track_iou} (IoU) "
                                                             "or disagree on the valve" if s.detect_frames else
                                                             "on every frame the frame policy")
                                  + f" ('{s.frames}') may need: where the header or the ECG trace times a clip, the "
                                  "policy's frames only; the classifier on the policy's frames only")}
    log(f"goals: bundle {bundle_dir} ({backend}); {res['frame_policy']}")
    glue = Glue.of_bundle(Path(bundle_dir), work)
    ours = OursInProcess(bundle, backend, s, scratch / "ours")
    ours.run(inputs["single"][:1])  # warm-up
    res["cost"] = {}
    for name in ("single", "clips"):
        res["cost"][name] = _cost(name, glue, ours.run, inputs[name], frames[name], repeats)
    day_src = work / "inputs" / "day" / "dicom"
    n = [0]

    def day(_files):
        n[0] += 1
        return _day_predict(Path(bundle_dir), backend, day_src, scratch / f"day_{n[0]}", s)

    res["cost"]["day"] = _cost("day", glue, day, inputs["day"], frames["day"], repeats)
    del glue

    log("goals: agreement with the float32 PyTorch path (every frame located)")
    ref = OursInProcess(bundle, "torch", replace(s, detect_frames=0), scratch / "ref")
    res["agreement"] = {}
    for name in ("single", "clips", "day"):
        a = ref.run(inputs[name])
        b = ours.run(inputs[name])
        res["agreement"][name] = agreement(a, b, bundle.exam_threshold, s.exam_aggregate)
    del ref, ours

    log("goals: echoavc predict as a subprocess (peak RSS; workers)")
    import sys

    def cli(key: str, extra: list[str]) -> dict:
        out = scratch / f"cli_{key}"
        shutil.rmtree(out, ignore_errors=True)
        opts = [f"--{k.replace('_', '-')}={v}" for k, v in (("detect_frames", s.detect_frames),
                                                            ("track_iou", s.track_iou))]
        cmd = [sys.executable, "-m", "echoavc.cli", "predict", str(day_src), "--model", str(bundle_dir), "--out",
               str(out), "--no-progress", *opts, *extra]
        rc, wall, rss, _, err = run_measured(cmd, out.with_name(out.name + ".rss"))
        # with workers, the peak is the command's own process: they are forked by a fork server, not by it
        own = " (the command's process; its workers not counted)" if "--workers" in extra and extra[
            extra.index("--workers") + 1] != "1" else ""
        log(f"  {key}: rc {rc}, {wall:.1f} s, peak RSS {rss} MiB{own}")
        return {"command": " ".join(["echoavc", *cmd[3:]]), "rc": rc, "wall_s": round(wall, 2),
                "peak_rss_mib": rss, **({"stderr": err[-800:]} if rc else {})}

    res["cli"] = {"overlays_none": cli("overlays_none", ["--overlays", "none"]), "default": cli("default", [])}
    w = {}
    for r in range(repeats):
        for k, extra in (("w1t1", ["--workers", "1", "--threads", "1"]), ("w2t1", ["--workers", "2", "--threads", "1"])):
            got = cli(f"{k}_{r}", extra)
            w[k] = got if k not in w or got["wall_s"] < w[k]["wall_s"] else w[k]
    res["cli"].update(w)
    return res


def verdicts(res: dict) -> list[tuple[bool, str]]:
    """(passed, line) per goal."""
    out = []
    c = res["cost"]
    for name, limit in (("single", 0.5), ("clips", 1 / 3), ("day", 1 / 3)):
        r = c[name]
        out.append((r["ratio"] <= limit, f"per-frame cost, {name} ({r['frames']} frames): ours {r['ours_s_per_frame']} "
                    f"vs glue {r['glue_s_per_frame']} s/frame = {r['ratio']:.2f} of the glue (goal <= {limit:.2f}); "
                    f"CPU {r['ours_cpu_per_frame']} vs {r['glue_cpu_per_frame']} s/frame = {r['ratio_cpu']:.2f}"))
    for name, a in res["agreement"].items():
        out.append((a["frame_agreement"] >= 0.99, f"frame decisions, {name}: {a['frames_same']}/{a['frames']} = "
                    f"{a['frame_agreement']:.2%} the same as the float32 PyTorch path (goal >= 99%)"))
        ex = ", ".join(f"{e['exam']} (P {e['p_ref']} vs {e['p_ours']})" for e in a["exams_exempt"]) or "none"
        out.append((not a["exams_differing"], f"exam decisions, {name}: {a['exams'] - len(a['exams_exempt']) - len(a['exams_differing'])}"
                    f"/{a['exams'] - len(a['exams_exempt'])} the same beyond {EXAM_MARGIN} of the threshold; "
                    f"exempt: {ex}" + (f"; differing: {a['exams_differing']}" if a["exams_differing"] else "")))
    cli = res["cli"]
    for k, limit in (("overlays_none", 1024), ("default", 1536)):
        r = cli[k]
        out.append((r["rc"] == 0 and 0 < r["peak_rss_mib"] <= limit, f"peak RSS, clinic day, {k.replace('_', ' ')}: "
                    f"{r['peak_rss_mib']} MiB (goal <= {limit}); rc {r['rc']}"))
    w1, w2 = cli["w1t1"], cli["w2t1"]
    speed = w1["wall_s"] / w2["wall_s"] if w2["wall_s"] else 0.0
    out.append((w1["rc"] == 0 and w2["rc"] == 0 and speed >= 1.7, f"--workers 2 --threads 1 vs 1 worker 1 thread, "
                f"clinic day: {w1['wall_s']} / {w2['wall_s']} s = {speed:.2f}x (goal >= 1.7x)"))
    return out


def print_goals(res: dict) -> bool:
    print(f"\ngoals (issue 18): bundle {res['bundle']}, backend {res['backend']}")
    print(f"  frame policy: {res['frame_policy']}")
    ok = True
    for passed, line in verdicts(res):
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {line}")
    print(f"  {'PASS' if ok else 'FAIL'}  all goals")
    return ok
