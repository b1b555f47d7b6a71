"""Sim-to-real benchmark: a detector trained on synthetic data only, measured on real echo frames (issue 15).

Per training seed (tuning seeds only; docs/evaluation.md, seed registry):

1. the detector's synthetic training study made exactly as ``echoavc demo`` makes it (``demo.DETECTOR_PATIENTS``
   patients, 8 frames per exam, every view, prevalence 0.5, 75/25 train/validation by patient, the demo's key for
   that seed) with that seed and the chosen generator (``--anatomy``; ``mixed``: the first half classic, the rest
   realistic, grown onto the same split);
2. the demo's detector settings (``detector_preset("cpu", **demo.DEMO_DETECTOR)``) trained on it with that seed
   (``--demo-seeds``: with the detector's default training seed, as ``echoavc demo --train-seed SEED`` trains it)
   (``--domain-randomisation`` adds the opt-in albumentations pipeline; ``--device`` picks a GPU when one is lent);
3. the real development frames (``/work/shared/real-dev``, 8 screen captures wrapped as DICOM) ingested by
   ``echoavc.ingest.ingest`` as a user would; the hand-drawn boxes (original 800x600 pixels) are mapped to the
   standard image with each frame's ingest transform (``cone.transform.StandardTransform`` from the manifest);
4. the top box of each real frame (all scores down to 0.001): IoU with the hand-drawn box on the 2 PSAX-AV frames,
   its score on the 6 frames of other views, against the "no valve" limit ``ScreeningSettings.valve_conf``
   (what a bundle's screening uses); a contact sheet with predicted (red) and hand-drawn (green) boxes.

Acceptance (issue 15), per seed: both PSAX-AV valves found (top box at IoU >= 0.5 with a score at or above
valve_conf) and none of the 6 other-view frames scored at or above valve_conf.

The contact sheets are drawn from the real frames: they are written to the work folder, never into the repository
(the real frames' licence, /work/shared/real-dev/README.md).

Run:  PYTHONPATH=src .venv/bin/python benchmarks/bench_sim2real.py [--seeds 2026 2027 2028] [--anatomy classic]
          [--domain-randomisation] [--style-from INGESTED_DIR [--style-method fourier]] [--jobs 2] [--work DIR]
          [--json FILE]
      ... --detector best.pt [--detector other.pt]   evaluate given checkpoints instead of training
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REAL_DEV = Path("/work/shared/real-dev")
DEFAULT_SEEDS = (2026, 2027, 2028)  # tuning seeds (the demo's training seed and the next two)
IOU_FOUND = 0.5


# ----------------------------------------------------------------------------- the real frames


def real_frames(real_dev: Path, work: Path) -> list[dict]:
    """Ingest real-dev's DICOM files (resumable) and return one record per frame: name, view, standard image,
    hand-drawn box in the standard image (None for other views)."""
    import pandas as pd

    from echoavc.cone.transform import StandardTransform
    from echoavc.detector.predict import read_image
    from echoavc.ingest import ingest

    out = work / "real-ingest"
    shas = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((real_dev / "dicom").glob("*.dcm"))}
    manifest_csv = out / "manifest.csv"
    done = manifest_csv.is_file() and set(shas.values()) <= set(
        pd.read_csv(manifest_csv, dtype={"source_sha256": str})["source_sha256"])
    if not done:  # (skipped when complete: variants sharing a work folder read it at once)
        ingest([real_dev / "dicom"], out, work / "keys" / "real.key", workers=1, progress=False)
    manifest = pd.read_csv(manifest_csv, dtype={"source_sha256": str})
    by_sha = {r["source_sha256"]: r for r in manifest.to_dict("records")}
    # the free-text note (last column) may hold commas unquoted: split the other six off
    lines = (real_dev / "boxes.csv").read_text().splitlines()
    head = lines[0].split(",")
    rows = []
    for line in lines[1:]:
        b = dict(zip(head, line.split(",", len(head) - 1)))
        dcm = real_dev / "dicom" / (Path(b["file"]).stem + ".dcm")
        sha = shas.get(dcm) or hashlib.sha256(dcm.read_bytes()).hexdigest()
        if sha not in by_sha:
            raise RuntimeError(f"{dcm}: not in the ingest manifest (ingest failed? see {out}/failures.csv)")
        m = by_sha[sha]
        t = StandardTransform.from_dict({**m, "size": m["std_size"]})
        box = None
        if b["x1"]:
            box = t.box_to_standard([float(b[k]) for k in ("x1", "y1", "x2", "y2")])
        rows.append({"name": Path(b["file"]).stem, "view": b["view"], "positive": box is not None,
                     "box": None if box is None else [round(float(v), 1) for v in box],
                     "image": read_image(out / m["image_path"])})
    return rows


# ----------------------------------------------------------------------------- training


def study_name(anatomy: str, realistic_share: float, patients: int | None = None) -> str:
    """The generator part of a study's (and a contact sheet's) name: ``mixed`` at its default half, ``mixed0.67``
    for another share; ``-p96`` when the study has other than the demo's detector patients (so that a study of
    another size in the same work folder is never reused for it)."""
    from echoavc.demo import DETECTOR_PATIENTS

    name = anatomy if anatomy != "mixed" or realistic_share == 0.5 else f"mixed{realistic_share:g}"
    return name + (f"-p{patients}" if patients and patients != DETECTOR_PATIENTS else "")


def study_dir(work: Path, anatomy: str, seed: int, realistic_share: float = 0.5, patients: int | None = None) -> Path:
    """Where the training study of ``anatomy``, ``seed`` and ``patients`` lives; its detectors sit beside it."""
    return work / f"{study_name(anatomy, realistic_share, patients)}-seed{seed}" / "study"


def make_training_study(study: Path, seed: int, anatomy: str, patients: int, realistic_share: float = 0.5,
                        workers: int = 1) -> float:
    """The demo's detector study for ``seed`` (resumable; ``workers`` processes synthesise it); seconds taken."""
    from echoavc.demo import DETECTOR_COHORT, make_detector_study
    from echoavc.synth.study import grow_study

    t0 = time.perf_counter()
    if (study / "table" / "split.json").is_file():
        return 0.0
    if anatomy != "mixed":
        make_detector_study(study, patients, seed, table_name="table", anatomy=anatomy, workers=workers)
    else:  # classic patients, then realistic ones (``realistic_share``) joining their split's fractions
        first = int(round(patients * (1 - realistic_share)))
        make_detector_study(study, first, seed, table_name="table-classic", anatomy="classic", workers=workers)
        grow_study(study, patients - first, seed + 500_500, anatomy="realistic", from_table="table-classic",
                   table_name="table", workers=workers, progress=False, **DETECTOR_COHORT)
    return time.perf_counter() - t0


def train_seed(seed: int, work: Path, anatomy: str, domain_randomisation: bool, patients: int,
               epochs: int | None, threads: int, log, style_from: Path | None = None,
               style_method: str = "histogram", device: str = "", realistic_share: float = 0.5,
               loader_workers: int | None = None, demo_seeds: bool = False) -> dict:
    """The synthetic training study and the demo's detector for one seed (both resumable). ``demo_seeds``: the
    detector's own training seed stays at its default, as ``echoavc demo --train-seed SEED`` trains it; otherwise
    it is ``seed`` too."""
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.demo import DEMO_DETECTOR
    from echoavc.detector.train import train_from_table
    from echoavc.settings import detector_preset

    study = study_dir(work, anatomy, seed, realistic_share, patients)
    sdir = study.parent  # the study's detectors beside it, with and without domain randomisation
    log(f"seed {seed}: the demo's detector study ({patients} patients, {anatomy}) ...")
    t_study = make_training_study(study, seed, anatomy, patients, realistic_share)
    det = sdir / ("detector" + ("-dr" if domain_randomisation else "") +
                  (f"-style-{style_method}" if style_from else "") + (f"-e{epochs}" if epochs else "") +
                  ("-demo-seed" if demo_seeds else ""))
    done = det / "bench-done.json"
    if done.is_file():
        return json.loads(done.read_text())
    settings = detector_preset("cpu", **{**DEMO_DETECTOR, "epochs": epochs or DEMO_DETECTOR["epochs"],
                                         **({} if demo_seeds else {"seed": seed}),
                                         "threads": threads or DEMO_DETECTOR["threads"], "device": device or None,
                                         "workers": DEMO_DETECTOR["workers"] if loader_workers is None
                                         else loader_workers})
    if domain_randomisation:
        settings = replace(settings, domain_randomisation=True)
    if style_from:
        settings = replace(settings, style_from=str(style_from), style_method=style_method)
    log(f"seed {seed}: training the demo's detector ({settings.model}, {settings.epochs} epochs at "
        f"{settings.imgsz} px) ...")
    t1 = time.perf_counter()
    table = DatasetTable.load(study / "table")
    res = train_from_table(table, Split.load(study / "table" / "split.json"), det, settings, progress=False)
    val = res.info.get("ultralytics_val_on_best") or {}
    rec = {"seed": seed, "detector_seed": settings.seed, "best": str(res.best), "study_seconds": round(t_study, 1),
           "train_seconds": round(time.perf_counter() - t1, 1), "device": res.info.get("device"),
           "synthetic_val_map50": val.get("metrics/mAP50(B)"), "anatomy": anatomy,
           "domain_randomisation": domain_randomisation, "style_from": str(style_from) if style_from else None,
           "style_method": style_method if style_from else None, "images": res.info.get("images")}
    done.write_text(json.dumps(rec, indent=1))
    return rec


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_seeds(seeds, jobs: int, *args, **kwargs) -> list[dict]:
    """``train_seed`` for every seed, ``jobs`` at a time (spawned processes: torch's thread pools do not fork)."""
    if jobs <= 1 or len(seeds) == 1:
        return [train_seed(s, *args, _log, **kwargs) for s in seeds]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_seed, s, *args, _log, **kwargs) for s in seeds]
        return [f.result() for f in futures]


# ----------------------------------------------------------------------------- measuring


def measure(weights: str | Path, frames: list[dict], valve_conf: float) -> dict:
    """Top box per real frame; the acceptance verdict."""
    from echoavc.cone.transform import box_iou
    from echoavc.detector.predict import Detector

    det = Detector(weights)
    dets = det.predict([f["image"] for f in frames], min_score=0.001, max_det=1)
    rows = []
    for f, d in zip(frames, dets):
        box, score = d.top
        score = 0.0 if not np.isfinite(score) else float(score)
        row = {"frame": f["name"], "view": f["view"], "score": round(score, 4),
               "top_box": None if box is None else [round(float(v), 1) for v in box]}
        if f["positive"]:
            iou = 0.0 if box is None else box_iou(box, f["box"])
            row.update(iou=round(iou, 3), found=bool(iou >= IOU_FOUND and score >= valve_conf))
        else:
            row.update(above_no_valve_limit=bool(score >= valve_conf))
        rows.append(row)
    pos = [r for r in rows if "iou" in r]
    neg = [r for r in rows if "iou" not in r]
    found = sum(r["found"] for r in pos)
    false = sum(r["above_no_valve_limit"] for r in neg)
    return {"weights": str(weights), "valve_conf": valve_conf, "frames": rows,
            "recall_iou50": f"{found}/{len(pos)}",
            "recall_iou50_any_score": f"{sum(r['iou'] >= IOU_FOUND for r in pos)}/{len(pos)}",
            "negatives_above_limit": f"{false}/{len(neg)}",
            "max_negative_score": max((r["score"] for r in neg), default=0.0),
            "pass": bool(found == len(pos) and false == 0)}


def contact_sheet(frames: list[dict], result: dict, path: Path, title: str, cell: int = 320) -> None:
    """Real frames in a grid: hand-drawn box green, top predicted box red with its score."""
    tiles = []
    for f, r in zip(frames, result["frames"]):
        img = cv2.cvtColor(f["image"], cv2.COLOR_RGB2BGR) if f["image"].ndim == 3 else \
            cv2.cvtColor(f["image"], cv2.COLOR_GRAY2BGR)
        s = cell / img.shape[1]
        img = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_AREA)
        if f["box"] is not None:
            x1, y1, x2, y2 = (int(round(v * s)) for v in f["box"])
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 220, 0), 2)
        if r["top_box"] is not None:
            x1, y1, x2, y2 = (int(round(v * s)) for v in r["top_box"])
            thick = 2 if r["score"] >= result["valve_conf"] else 1
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), thick)
        verdict = (f"IoU {r['iou']:.2f} " + ("found" if r["found"] else "MISSED")) if "iou" in r else \
            ("FALSE VALVE" if r["above_no_valve_limit"] else "no valve: ok")
        cv2.putText(img, f"{r['frame'][:22]}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 255, 255), 1)
        cv2.putText(img, f"score {r['score']:.3f}  {verdict}", (4, cell - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (0, 255, 255), 1)
        tiles.append(img)
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)])
    head = np.zeros((28, grid.shape[1], 3), np.uint8)
    cv2.putText(head, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([head, grid]))


def per_seed_table(results: list[dict], valve_conf: float) -> str:
    """One markdown row per run: IoU and score on each valve frame, the other views' scores, the verdict."""
    if not results:
        return ""
    pos = [f["frame"] for f in results[0]["frames"] if "iou" in f]
    neg = [f["frame"] for f in results[0]["frames"] if "iou" not in f]
    head = ["run", *(f"{n}: IoU, score" for n in pos), f"other views ({', '.join(neg)})",
            f"other views >= {valve_conf}", "synthetic val mAP50", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        by = {f["frame"]: f for f in r["frames"]}
        tag = f"seed {r['seed']}" if r.get("seed") is not None else r["best"]
        m = r.get("synthetic_val_map50")
        lines.append("| " + " | ".join([tag, *(f"{by[n]['iou']:.3f}, {by[n]['score']:.3f}" for n in pos),
                                        ", ".join(f"{by[n]['score']:.3f}" for n in neg), r["negatives_above_limit"],
                                        "-" if m is None else f"{m:.3f}", "PASS" if r["pass"] else "FAIL"]) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    ap.add_argument("--anatomy", default="classic", choices=("classic", "realistic", "mixed"))
    ap.add_argument("--domain-randomisation", action="store_true")
    ap.add_argument("--style-from", type=Path, default=None, help="train with --style-from this ingest output "
                    "folder (never real-dev: that is the measuring stick)")
    ap.add_argument("--style-method", default="histogram", choices=("histogram", "fourier"))
    ap.add_argument("--patients", type=int, default=None, help="training patients (default: the demo's detector "
                    "patients)")
    ap.add_argument("--epochs", type=int, default=None, help="override the demo detector's epochs (not the demo's)")
    ap.add_argument("--realistic-share", type=float, default=0.5, help="--anatomy mixed: the share of realistic "
                    "patients")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained at once (each in its own process)")
    ap.add_argument("--device", default="", help="torch device for training ('' : a GPU when there is one)")
    ap.add_argument("--demo-seeds", action="store_true", help="each seed makes the study only, the detector "
                    "keeps its default training seed: what `echoavc demo --train-seed SEED` trains (default: the "
                    "detector's training seed is SEED too)")
    ap.add_argument("--study-workers", type=int, default=1, help="processes synthesising each training study")
    ap.add_argument("--loader-workers", type=int, default=None, help="data-loader processes per training (default: "
                    "the demo's; more only speeds a many-core machine, the recipe is the same)")
    ap.add_argument("--study-only", action="store_true", help="make the seeds' training studies and stop (so that "
                    "variants trained at once in one --work share them)")
    ap.add_argument("--detector", type=Path, action="append", default=None,
                    help="evaluate this checkpoint instead of training (repeatable)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the preset's; 1 is faster on a busy "
                    "shared machine)")
    ap.add_argument("--real-dev", type=Path, default=REAL_DEV)
    ap.add_argument("--work", type=Path, default=Path("/tmp/echoavc-sim2real"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from echoavc.evaluate.seeds import TUNING_SEEDS
    from echoavc.settings import ScreeningSettings

    if args.style_from and args.real_dev.resolve() in [args.style_from.resolve(), *args.style_from.resolve().parents]:
        ap.error("--style-from must not be the real development frames: they are what is measured")
    bad = [s for s in args.seeds if s not in TUNING_SEEDS]
    if bad and not args.detector:
        ap.error(f"training seeds must be tuning seeds ({TUNING_SEEDS.start}-{TUNING_SEEDS.stop - 1}): {bad}")
    from echoavc.demo import DETECTOR_PATIENTS

    args.work.mkdir(parents=True, exist_ok=True)
    valve_conf = ScreeningSettings().valve_conf
    patients = args.patients or DETECTOR_PATIENTS
    if args.study_only:
        for seed in args.seeds:
            study = study_dir(args.work, args.anatomy, seed, args.realistic_share, patients)
            seconds = make_training_study(study, seed, args.anatomy, patients, args.realistic_share,
                                          args.study_workers)
            _log(f"seed {seed}: {args.anatomy} study ready ({seconds:.0f} s)")
        return 0
    frames = real_frames(args.real_dev, args.work)
    runs = []
    if args.detector:
        runs = [{"seed": None, "best": str(p), "given": True} for p in args.detector]
    else:
        runs = train_seeds(args.seeds, args.jobs, args.work, args.anatomy, args.domain_randomisation,
                           patients, args.epochs, args.threads,
                           style_from=args.style_from, style_method=args.style_method, device=args.device,
                           realistic_share=args.realistic_share, loader_workers=args.loader_workers,
                           demo_seeds=args.demo_seeds)
    results = []
    for i, run in enumerate(runs, 1):
        res = measure(run["best"], frames, valve_conf)
        tag = f"seed{run['seed']}" if run["seed"] is not None else str(i)
        variant = "given" if run.get("given") else (
            study_name(args.anatomy, args.realistic_share, patients) + ("-dr" if args.domain_randomisation else "")
            + (f"-style-{args.style_method}" if args.style_from else "") + (f"-e{args.epochs}" if args.epochs else "")
            + ("-demo-seed" if args.demo_seeds else ""))
        sheet = args.work / f"contact-{variant}-{tag}.png"
        contact_sheet(frames, res, sheet, f"{variant} {tag}: "
                      f"recall@0.5 {res['recall_iou50']}, negatives >= {valve_conf} {res['negatives_above_limit']}")
        results.append({**run, **res, "contact_sheet": str(sheet)})
    out = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "anatomy": args.anatomy,
           "domain_randomisation": args.domain_randomisation, "valve_conf": valve_conf, "runs": results}
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    for r in results:
        ious = ", ".join(f"{f['frame']} IoU {f['iou']:.2f} (score {f['score']:.3f})" for f in r["frames"] if "iou" in f)
        negs = ", ".join(f"{f['frame']} {f['score']:.3f}" for f in r["frames"] if "iou" not in f)
        print(f"seed {r['seed']}: {ious}; recall@0.5 {r['recall_iou50']}; other views: {negs}; "
              f"above {valve_conf}: {r['negatives_above_limit']}; synthetic val mAP50 "
              f"{r.get('synthetic_val_map50')}; {'PASS' if r['pass'] else 'FAIL'}")
    print(per_seed_table(results, valve_conf))
    ok = bool(results) and all(r["pass"] for r in results)
    print("ACCEPTANCE:", "PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
