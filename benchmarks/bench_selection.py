"""Issue 16's end-to-end check: no manual frame picking costs at most 0.02 exam AUROC.

Exams screened from their raw files (mixed views, every phase: the bundle's view model takes the clips, the
valve-phase sources take the closed frames, as ``echoavc predict`` does by default) against the same bundle's
detector and classifier on the ground-truth frames (the generator's own ``psax_av`` clips and ``closed`` frames,
what a person would have picked). The exam AUROC of each, and their difference with a paired patient bootstrap
(every resample scores both paths on the same patients), on a held-out cohort of an evaluation seed.

    PYTHONPATH=src python benchmarks/bench_selection.py --bundle BUNDLE --seed 900814 --patients 64 --work DIR
    PYTHONPATH=src python benchmarks/bench_selection.py --demo DEMO_DIR --view-model VIEWS --seed 900814 ...

``--bundle``: a bundle with a view model. ``--demo`` + ``--view-model``: one is assembled (``echoavc train`` with
the demo's trained detector and classifier given, and the view model given; the whole-path validation and exam
threshold as always). The cohort: classic anatomy, ``--frames`` frames an exam over its clips (40% other views),
``--beats`` cardiac cycles a clip, the phase-variety headers and ECG traces of docs/phase.md, prevalence 0.5. The
defaults (48 frames, one beat) give the aortic-valve clips real frame rates (14-29 frames over one beat: 22-78 ms
a frame, the median printed), so that an R Wave Pointer's half-frame uncertainty is what it is on real clips; with
16 frames over two beats (the first design) it was a fifth of the cycle either side of each valve event. Every file is counted:
an exam neither path decides is reported, and the comparison is over the exams both decide (coverage printed).
PASS when the paired 95% interval of (automatic - ground truth) lies above -0.02 (non-inferiority), and the
cohort has at least 60 patients.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

MARGIN = 0.02


def assemble(demo: Path, view_model: Path, out: Path) -> Path:
    """The demo's detector and classifier with ``view_model``, validated as ``echoavc train`` does."""
    from echoavc.demo import DEMO_CLASSIFIER, DEMO_DETECTOR, DEMO_SCREENING
    from echoavc.settings import ScreeningSettings, classifier_preset, detector_preset
    from echoavc.train import train_bundle

    if not (out / "bundle.json").is_file():
        train_bundle(demo / "study" / "table", out, "cpu", work=out.with_name(out.name + ".work"),
                     detector=detector_preset("cpu", **DEMO_DETECTOR), classifier=classifier_preset("cpu", **DEMO_CLASSIFIER),
                     screening=ScreeningSettings(**DEMO_SCREENING),
                     detector_weights=demo / "model.work" / "demo-detector" / "train" / "weights" / "best.pt",
                     classifier_model=demo / "model.work" / "demo-classifier", view_model=view_model, progress=False,
                     log=lambda m: print("  " + m, flush=True))
    return out


def reference_clips(bundle, cohort: Path, failures: list) -> list:
    """The bundle's Screener on each file's ground-truth frames only (psax_av clips, valve closed), no view model
    and no phase source: what a person picking frames by hand would have screened. A file that fails is noted."""
    from echoavc.dicom.read import sha256_bytes
    from echoavc.errors import EchoAVCError
    from echoavc.screening import ClipResult, Screener, exam_id_of
    from echoavc.screening.clips import read_input

    truth = pd.read_csv(cohort / "frames.csv")
    picked = truth[(truth["view"] == "psax_av") & (truth["valve_phase"] == "closed")]
    want = {}
    for f, i in zip(picked["file"], picked["frame_index"]):
        want.setdefault((cohort / f).resolve().as_posix(), set()).add(int(i))
    screener = Screener(bundle, "auto")
    clips = []
    for path in sorted(want):
        data = Path(path).read_bytes()
        try:
            prepare, study, _, _ = read_input(data, path, bundle.ingest_settings(), with_header=True)
            prep = prepare()
        except EchoAVCError as exc:
            failures.append(f"{path}: {exc}")
            continue
        images = [prep.standard(frame) for _, frame in prep.frames()]
        idx = [j for j, k in enumerate(prep.kept) if int(k) in want[path]]
        exam_id = exam_id_of(study, None)
        frames = screener.screen([images[j] for j in idx], [prep.kept[j] for j in idx], exam_id, path)
        clips.append(ClipResult(path, sha256_bytes(data), exam_id, frames))
    return clips


def auc_interval(y, a, b, groups, n_boot: int):
    from sklearn.metrics import roc_auc_score

    from echoavc.evaluate import bootstrap_by_group

    one = [bootstrap_by_group(lambda t, p: roc_auc_score(t, p), groups, y, p, n_boot=n_boot) for p in (a, b)]
    diff = bootstrap_by_group(lambda t, p, q: roc_auc_score(t, p) - roc_auc_score(t, q), groups, y, a, b,
                              n_boot=n_boot)
    return one, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="a trained bundle with a view model")
    ap.add_argument("--demo", type=Path, help="an `echoavc demo` folder (with --view-model)")
    ap.add_argument("--view-model", type=Path, help="an `echoavc views train` folder")
    ap.add_argument("--seed", type=int, default=900_814, help="the held-out cohort's evaluation seed (900 813: the first design)")
    ap.add_argument("--patients", type=int, default=64)
    ap.add_argument("--frames", type=int, default=48, help="frames per exam, over its clips")
    ap.add_argument("--beats", type=float, default=1.0, help="cardiac cycles each clip spans")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/echoavc-selection"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    from echoavc.bundle import load_bundle
    from echoavc.demo import heldout_truth
    from echoavc.evaluate.seeds import require_evaluation_seed
    from echoavc.predict import predict
    from echoavc.screening import exam_results
    from echoavc.synth.cohort import make_cohort

    require_evaluation_seed(a.seed, "selection benchmark's held-out cohort")
    t0 = time.perf_counter()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.bundle is None:
        if a.demo is None or a.view_model is None:
            ap.error("give --bundle, or --demo and --view-model")
        a.bundle = assemble(a.demo, a.view_model, a.work / "model")
    bundle = load_bundle(a.bundle)
    if not bundle.has_views:
        ap.error(f"{a.bundle} has no view model: the automatic path needs one")
    # named by its design: a kept cohort of another design is never reused
    cohort = a.work / f"heldout-{a.seed}-{a.patients}p-{a.frames}f-{a.beats:g}b"
    if not (cohort / "labels.csv").is_file():
        make_cohort(cohort, a.patients, a.seed, frames_per_exam=a.frames, beats_per_clip=a.beats, phase_variety=True,
                    prevalence=0.5, workers=a.workers, progress=False)
    t_cohort = time.perf_counter() - t0

    auto = predict([cohort / "dicom"], a.bundle, a.work / "automatic", workers=a.workers, overlays="none",
                   report=False, progress=False)
    t_auto = time.perf_counter() - t0 - t_cohort
    s = bundle.screening
    failed_ref: list = []
    ref = exam_results(reference_clips(bundle, cohort, failed_ref), bundle.exam_threshold, s.exam_aggregate)
    t_ref = time.perf_counter() - t0 - t_cohort - t_auto

    truth = heldout_truth(cohort).set_index("exam_id")
    p_auto = {e["exam_id"]: e["probability"] for e in auto.exams}
    p_ref = {e["exam_id"]: e["probability"] for e in ref}
    exams = list(truth.index)
    decided = {k: sum(p.get(e) is not None for e in exams) for k, p in (("automatic", p_auto), ("reference", p_ref))}
    both = [e for e in exams if p_auto.get(e) is not None and p_ref.get(e) is not None]
    y = np.array([int(truth.loc[e, "calcified"]) for e in both])
    groups = [str(truth.loc[e, "patient_id"]) for e in both]
    (auc_a, auc_r), diff = auc_interval(y, np.array([p_auto[e] for e in both]), np.array([p_ref[e] for e in both]),
                                        groups, a.n_boot)
    frames = pd.DataFrame(auto.frames)
    clips_taken = frames.groupby("source")["status"].apply(lambda s: (s != "other_view").any())
    n_pat = int(truth["patient_id"].nunique())
    ft = pd.read_csv(cohort / "frames.csv").drop_duplicates("file")
    ft = ft.loc[ft["view"] == "psax_av", "frame_time_ms"]
    lines = [
        f"cohort: evaluation seed {a.seed}, {n_pat} patients, {len(exams)} exams, "
        f"{sum(1 for _ in (cohort / 'dicom').rglob('*.dcm'))} files, {a.frames} frames an exam (mixed views, all "
        f"phases, phase-variety headers), {a.beats:g} beat(s) a clip: aortic-valve clips {ft.min():.0f}-{ft.max():.0f} "
        f"ms a frame (median {ft.median():.0f}); bundle {a.bundle}",
        f"automatic (view model + valve phase, as predict): {decided['automatic']}/{len(exams)} exams decided, "
        f"{int(clips_taken.sum())}/{len(clips_taken)} clips taken, {len(auto.failures)} files failed",
        f"ground-truth frames (psax_av clips, valve closed, by the generator's truth): {decided['reference']}/"
        f"{len(exams)} exams decided, {len(failed_ref)} files failed",
        f"exam AUROC over the {len(both)} exams both decide ({int(y.sum())} calcified): automatic "
        f"{auc_a.format(3)}, ground-truth frames {auc_r.format(3)} (95% patient bootstrap, {a.n_boot} resamples)",
    ]
    ok_size = n_pat >= 60
    ok = diff.lo >= -MARGIN
    verdict = [
        f"{'PASS' if ok_size else 'FAIL'} held-out cohort of {n_pat} patients (goal >= 60)",
        f"{'PASS' if ok else 'FAIL'} exam AUROC automatic - ground-truth frames: {diff.format(3)} (paired patient "
        f"bootstrap, 95%; goal: the interval above -{MARGIN})",
    ]
    print("\n".join(lines + verdict), flush=True)
    print(f"seconds: cohort {t_cohort:.0f}, automatic {t_auto:.0f}, ground-truth frames {t_ref:.0f}")
    if a.json:
        a.json.write_text(json.dumps({"lines": lines + verdict, "auroc_automatic": auc_a.to_dict(),
                                      "auroc_reference": auc_r.to_dict(), "difference": diff.to_dict(),
                                      "decided": decided, "exams_both": len(both), "failed_reference": failed_ref,
                                      "failed_automatic": auto.failures}, indent=1, default=str) + "\n")
    return 0 if ok and ok_size else 1


if __name__ == "__main__":
    sys.exit(main())
