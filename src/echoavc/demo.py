"""``echoavc demo``: the whole pipeline on synthetic data, start to finish, on a laptop.

synthesise a training cohort -> ingest -> dataset build -> patient split -> train both stages (one bundle)
-> synthesise held-out patients (an evaluation seed, never tuned on) -> ``echoavc evaluate`` on their raw
exams (``predict``, joined with the generator's labels; every file counted; intervals on every number)
-> the HTML report. The figures printed are held-out test figures only.

Every step keeps its output, so a re-run continues where an interrupted one stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from echoavc.files import atomic_write_text


@dataclass
class DemoResult:
    out: Path
    bundle: Path
    report_html: Path
    evaluation: dict
    seconds: dict


def heldout_truth(cohort_dir: Path) -> pd.DataFrame:
    """Per exam of a synthetic cohort: exam id (as ``predict`` names it), patient, calcified, grade."""
    from echoavc.screening import exam_id_of

    lab = pd.read_csv(cohort_dir / "labels.csv", dtype=str, keep_default_na=False)
    lab["exam_id"] = lab["study_instance_uid"].map(exam_id_of)
    lab["calcified"] = lab["calcified"].astype(int)
    return lab


def evaluate_exams(exams: list[dict], truth: pd.DataFrame, threshold: float) -> dict:
    """Held-out exam metrics with intervals (patient bootstrap; exact intervals for proportions)."""
    from echoavc.evaluate import classification_report
    from echoavc.train import headline_metrics

    t = truth.set_index("exam_id")
    rows = [(e, t.loc[e["exam_id"]]) for e in exams if e["exam_id"] in t.index]
    decided = [(e, r) for e, r in rows if e["probability"] is not None]
    out = {"exams": len(rows), "undetermined": len(rows) - len(decided), "threshold": threshold}
    y = np.array([int(r["calcified"]) for _, r in decided])
    if len(np.unique(y)) == 2:
        rep = classification_report(y, np.array([e["probability"] for e, _ in decided]), threshold,
                                    groups=[str(r["patient_id"]) for _, r in decided],
                                    grades=[int(r["grade"]) for _, r in decided], n_boot=1000)
        out.update(headline_metrics(rep))
        out["recall_by_grade"] = {str(g): v for g, v in (rep.get("recall_by_grade") or {}).items()}
    out["agreement"] = {"correct": int(sum((e["decision"] == "calcified") == bool(r["calcified"])
                                           for e, r in decided)), "decided": len(decided)}
    return out


CORRUPT_NAME = "corrupt-example.dcm"


def evaluate_frames(frames: list[dict], cohort_dir: Path) -> dict:
    """Frame statuses against the generator's views: valve-view frames decided, other views rejected."""
    from echoavc.evaluate.intervals import proportion_interval

    truth = pd.read_csv(cohort_dir / "frames.csv", dtype={"source_sha256": str})
    view = {((cohort_dir / f).resolve().as_posix(), int(i)): v
            for f, i, v in zip(truth["file"], truth["frame_index"], truth["view"])}
    from echoavc.screening.core import REJECTED_AS_OTHER_VIEW, judged_as_view

    pairs = [(view.get((Path(f["source"]).resolve().as_posix(), int(f["frame_index"]))), f["status"],
              judged_as_view(f["status"], f.get("valve_score"))) for f in frames]
    pairs = [(v, s, j) for v, s, j in pairs if v is not None]

    def share(rows, ok):
        k, n = sum(s in ok for s in rows), len(rows)
        iv = proportion_interval(k, n, "wilson") if n else None
        return {"value": round(k / n, 4) if n else None, "low": round(iv.lo, 4) if iv else None,
                "high": round(iv.hi, 4) if iv else None, "count": f"{k}/{n}"}

    valve = [s for v, s, _ in pairs if v == "psax_av"]
    # other views: over the frames the models judged (not those the frame policy set aside before the detector)
    other = [s for v, s, judged in pairs if v != "psax_av" and judged]
    return {"valve_view_decided": share(valve, {"decided"}),
            "valve_view_found": share(valve, {"decided", "low_confidence"}),
            "other_views_no_valve": share(other, set(REJECTED_AS_OTHER_VIEW)),
            "statuses": {s: sum(1 for _, x, _ in pairs if x == s) for s in sorted({x for _, x, _ in pairs})}}


#: the held-out patients' seed: an evaluation seed (docs/evaluation.md, seed registry), never tuned on
HELDOUT_SEED = 900_001

#: held-out patients (one exam each): enough that the exam figures' intervals say something
HELDOUT_PATIENTS = 48

#: training patients in all. The first ``DETECTOR_PATIENTS`` (every view, 8 frames an exam) are made first, and the
#: detector trains on them in a second process; meanwhile the rest (aortic-valve short-axis clips only, 5 frames an
#: exam) are made and the classifier trains on all of them: its skill grows with patients far more than the
#: detector's does (docs/screening.md), and synthesising them while the detector trains costs no wall time
TRAIN_PATIENTS = 260

#: patients the detector trains and selects its epoch on: its time grows with images x epochs, and finding the
#: valve needs far fewer patients than grading it
DETECTOR_PATIENTS = 48

#: the detector's patients: 8 frames an exam (every view), half of them calcified
DETECTOR_COHORT = {"frames_per_exam": 8, "prevalence": 0.5}

#: frames per exam of the classifier-only patients (all of them valve frames: no other views)
CLASSIFIER_FRAMES_PER_EXAM = 5

#: the demo's detector: the ``cpu`` preset made cheaper for the demo's few minutes (chosen on tuning seeds,
#: docs/screening.md); one torch thread, so the classifier's patients are made and trained on the other core
DEMO_DETECTOR = {"epochs": 30, "imgsz": 160, "batch": 8, "threads": 1, "workers": 0}

#: the demo's classifier: the ``cpu`` preset at half the width (a third of its training time, the same skill on
#: tuning cohorts; docs/screening.md), 25 epochs at most (its best validation epoch came at 12-17 on tuning
#: cohorts; a 20-epoch schedule reached a lower validation AUROC), on one thread (the detector has the other core);
#: the binary loss alone, as when the demo's figures were measured (the preset's grade loss was added after)
DEMO_CLASSIFIER = {"threads": 1, "backbone": "mobilenetv3_small_050", "epochs": 25, "grade_loss": 0.0}

#: the demo's screening: a frame counts for its exam from a valve score of 0.3 (default 0.5). The demo's detector,
#: trained on 48 patients, scores most aortic-valve frames it misses at 0.5 between 0.25 and 0.5 (and other views
#: below 0.25), which left held-out exams undetermined (tuning seeds, docs/screening.md)
DEMO_SCREENING = {"decide_conf": 0.3}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (on a busy machine the wall clock
    says little; this is the work, which a quiet 2-core machine spreads over both cores where it can)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 1)


def write_demo_key(path: Path, train_seed: int) -> None:
    """The demo's pseudonym key, derived from ``train_seed`` so that a run is reproducible: the patient split goes
    through the pseudonyms, and a random key moved the held-out figures by about 0.1 AUROC from run to run.
    Only for the demo's synthetic patients: a key for real data must stay secret and random (ingest makes one)."""
    import hashlib
    import os

    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = hashlib.sha256(f"echoavc demo synthetic key, train seed {int(train_seed)}".encode()).hexdigest()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")


def make_detector_study(study: Path, patients: int, seed: int, *, workers: int = 1, progress: bool = False,
                        table_name: str = "table-detector", **synth):
    """The detector's patients as the demo makes them (every view, ``DETECTOR_COHORT``, 75/25 train/validation by
    patient) under the demo's key for ``seed``; ``synth``: other SynthSettings fields (e.g. ``anatomy``). The one
    recipe the demo and benchmarks/bench_sim2real.py share. Returns make_study's (table, split, info)."""
    from echoavc.synth.study import make_study

    write_demo_key(Path(study) / "keys" / "echoavc.key", seed)
    return make_study(study, patients, seed, train=0.75, val=0.25, test=0.0, workers=workers, progress=progress,
                      table_name=table_name, **DETECTOR_COHORT, **synth)


def train_demo_detector(table_dir: str, out: str, settings) -> str:
    """Train the detector on the detector's table (its own split); the best checkpoint's path. Runs in its own
    process."""
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.detector.train import train_from_table

    table = DatasetTable.load(table_dir)
    res = train_from_table(table, Split.load(Path(table_dir) / "split.json"), out, settings, progress=False)
    return str(res.best)


def run_demo(out: str | Path, patients: int = TRAIN_PATIENTS, heldout: int = HELDOUT_PATIENTS,
             train_seed: int = 2026, preset: str = "cpu", workers: int = 2, progress: bool = True,
             log: Callable[[str], None] = print, seed: int = HELDOUT_SEED,
             detector_patients: int = DETECTOR_PATIENTS) -> DemoResult:
    """``train_seed`` makes the training cohort and the demo's pseudonym key (any seed); ``seed`` the held-out
    patients, which must be an evaluation seed: the demo refuses to report on a seed settings were tuned on. The
    training cohort does not depend on ``seed``: a re-run in the same folder with another ``seed`` reuses the
    trained bundle and only synthesises and evaluates the new held-out patients.

    The first ``detector_patients`` training patients are made first and the detector trains on them in a second
    process, while this one makes the other training patients (valve clips only), trains the classifier on all of
    them and synthesises the held-out patients; ``train`` then validates the whole path on the validation
    patients and writes the bundle."""
    from echoavc.evaluate.seeds import require_evaluation_seed

    require_evaluation_seed(seed, "demo's held-out patients")
    import dataclasses
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from echoavc.classifier.train import train_classifier
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.evaluate.heldout import evaluate_exams as evaluate_held_out
    from echoavc.settings import ScreeningSettings, classifier_preset, detector_preset
    from echoavc.synth.study import grow_study
    from echoavc.train import mark_stage_done, stage_done, train_bundle

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict = {}
    cpu: dict = {}
    t_all = t = time.perf_counter()

    def stage(name: str, t0: float) -> float:
        seconds[name] = round(time.perf_counter() - t0, 1)
        cpu[name] = round(cpu_seconds() - sum(cpu.values()), 1)
        return time.perf_counter()

    study = out / "study"
    n_det = min(detector_patients, patients)
    n_more = patients - n_det
    det_table_dir = study / "table-detector"
    # the whole training table: the detector's patients and, when there are more, the classifier's too
    table_dir = study / "table" if n_more else det_table_dir
    if not (det_table_dir / "split.json").is_file():
        log(f"[1/4] synthesising the detector's {n_det} patients (seed {train_seed}) and ingesting them ...")
        _, _, info = make_detector_study(study, n_det, train_seed, workers=workers, progress=progress,
                                         table_name=det_table_dir.name)
        log(f"      {info}")
    else:
        log("[1/4] the detector's patients: already made")
    t = stage("study", t)

    bundle = out / "model"
    work = out / "model.work"
    det_s = detector_preset(preset, **(DEMO_DETECTOR if preset == "cpu" else {}))
    clf_s = classifier_preset(preset, **(DEMO_CLASSIFIER if preset == "cpu" else {}))
    if not (bundle / "bundle.json").is_file():
        det_table = DatasetTable.load(det_table_dir)
        det_split = Split.load(det_table_dir / "split.json")
        det_dir, clf_dir = work / "demo-detector", work / "demo-classifier"
        log(f"[2/4] training the detector ({det_s.model}, {det_s.epochs} epochs at {det_s.imgsz} px, {n_det} "
            f"patients) in a second process; meanwhile {n_more} more patients for the classifier "
            f"({clf_s.backbone}), the classifier and the held-out patients ...")
        # finished stages are kept, each with what it was trained from: a re-run with other settings retrains it
        det_fp = {"table": det_table.fingerprint, "split": det_split.fingerprint,
                  "settings": dataclasses.asdict(det_s)}
        det_rec = stage_done(det_dir, det_fp)
        pool = None
        if det_rec is None:
            # spawn: a forked copy of a process that has used torch can hang in its thread pools
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            detector_job = pool.submit(train_demo_detector, str(det_table_dir), str(det_dir), det_s)
        try:
            if n_more and not (table_dir / "split.json").is_file():
                _, _, info = grow_study(study, n_more, _classifier_cohort_seed(train_seed),
                                        frames_per_exam=CLASSIFIER_FRAMES_PER_EXAM, workers=1, prevalence=0.5,
                                        progress=progress, from_table=det_table_dir.name, table_name=table_dir.name,
                                        distractor_fraction=0.0)
                log(f"      classifier's patients: {info}")
            table, split = DatasetTable.load(table_dir), Split.load(table_dir / "split.json")
            clf_fp = {"table": table.fingerprint, "split": split.fingerprint, "settings": dataclasses.asdict(clf_s)}
            if stage_done(clf_dir, clf_fp) is None:
                log(f"      classifier: {len(split.parts()['train'])} training patients, "
                    f"{len(split.parts()['val'])} validation patients")
                train_classifier(table, split, clf_dir, clf_s, log=(lambda m: log("      " + m)) if progress else None)
                mark_stage_done(clf_dir, clf_fp, {})
            _heldout_cohort(out, seed, heldout, 1, progress, log)
            if pool is not None:
                log("      waiting for the detector ...")
                det_rec = {"best": detector_job.result()}
                mark_stage_done(det_dir, det_fp, det_rec)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        t = stage("train", t)
        log("      detector and classifier trained; validating the whole path (echoavc train) ...")
        import torch

        torch.set_num_threads(max(1, workers))
        scr = ScreeningSettings(**(DEMO_SCREENING if preset == "cpu" else {}))
        train_bundle(table_dir, bundle, preset, work=work, detector=det_s, classifier=clf_s, screening=scr,
                     detector_weights=det_rec["best"], classifier_model=clf_dir,
                     progress=progress, log=lambda m: log("      " + m))
        t = stage("validate", t)
    else:
        log("[2/4] model bundle: already trained")
        t = stage("train", t)

    _heldout_cohort(out, seed, heldout, workers, progress, log)
    held = out / f"heldout-{seed}"
    t = stage("heldout", t)

    t_screen = time.perf_counter()
    log("[4/4] echoavc evaluate on the held-out exams ...")
    ev_dir = out / f"evaluation-{seed}"
    evaluation = evaluate_held_out(bundle, held / "dicom", held / "labels.csv", ev_dir, workers=workers,
                                   progress=progress, overlays="driving", report=True)
    stage("screen", t_screen)
    seconds["total"] = round(time.perf_counter() - t_all, 1)
    seconds["cpu"] = cpu_seconds()  # user + sys of this run, its finished child processes included
    seconds["cpu_by_stage"] = cpu
    frames = json.loads((ev_dir / "screening" / "results.json").read_text())["frames"]
    evaluation["frames"] = evaluate_frames(frames, held)
    evaluation["heldout_seed"] = seed
    evaluation["seconds"] = seconds
    atomic_write_text(out / f"heldout_evaluation-{seed}.json", json.dumps(evaluation, indent=1, default=str) + "\n")
    return DemoResult(out, bundle, ev_dir / "screening" / "report.html", evaluation, seconds)


def _classifier_cohort_seed(train_seed: int) -> int:
    """The cohort seed of the classifier-only patients: next to the training seed (a tuning seed as well), and
    differing from it modulo 1000, which synthetic patient ids carry."""
    return int(train_seed) + 1


def _heldout_cohort(out: Path, seed: int, heldout: int, workers: int, progress: bool, log) -> None:
    """The held-out patients of evaluation seed ``seed`` (once), with a truncated copy of one file, so the run
    also shows how a bad file is reported and counted."""
    from echoavc.synth.cohort import make_cohort

    held = out / f"heldout-{seed}"  # named by its seed: a folder from another seed is never reused
    if not (held / "labels.csv").is_file():
        log(f"[3/4] synthesising {heldout} held-out patients (evaluation seed {seed}, never seen in training or "
            "tuning) ...")
        make_cohort(held, heldout, seed=seed, frames_per_exam=8, exams_per_patient=1, workers=workers,
                    progress=progress, prevalence=0.5)
    corrupt = held / "dicom" / CORRUPT_NAME
    if not corrupt.is_file():
        first = sorted((held / "dicom").rglob("*.dcm"))[0]
        corrupt.write_bytes(first.read_bytes()[: first.stat().st_size // 3])


def describe(ev: dict) -> str:
    """The demo's closing lines: held-out test figures from ``echoavc evaluate`` (never validation figures)."""
    from echoavc.evaluate.intervals import format_plain

    def fmt(m):
        return format_plain(m) if isinstance(m, dict) else "n/a"

    c = ev["counts"]
    dec, err = ev.get("exam_decided") or {}, ev.get("exam_undetermined_as_errors") or {}
    fr = ev.get("frames", {})
    bad = (ev.get("data") or {}).get("failed_files") or []
    lines = [f"held-out test exams (evaluation seed {ev.get('heldout_seed')}): {c['exams']} exams of "
             f"{c['patients']} patients, coverage {fmt((ev.get('coverage') or {}).get('exams'))} "
             f"({c['exams_undetermined']} undetermined)",
             "  over decided exams:           " + ", ".join(f"{k} {fmt(dec.get(k))}"
                                                             for k in ("auroc", "recall", "specificity")),
             "  undetermined counted as error: " + ", ".join(f"{k} {fmt(err.get(k))}"
                                                              for k in ("auroc", "recall", "specificity"))]
    if fr:
        lines.append(f"  frames: valve view decided {fr['valve_view_decided']['count']}, other views rejected "
                     f"{fr['other_views_no_valve']['count']}")
    if bad:
        lines.append(f"  {len(bad)} file(s) failed and were counted against their exams"
                     + (" (the deliberately truncated example)" if len(bad) == 1
                        and bad[0]["source"].endswith(CORRUPT_NAME) else ""))
    return "\n".join(lines)


__all__ = ["run_demo", "evaluate_exams", "heldout_truth", "describe", "DemoResult"]
