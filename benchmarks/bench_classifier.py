"""Benchmarks of the calcification classifier (results in docs/classifier.md).

Three measurements, each a sub-command:

  latency     single-crop inference latency per backbone on CPU, PyTorch eager vs ONNX Runtime in the same run
  epoch       training seconds per epoch per preset (smoke, cpu, paper) on a dataset
  acceptance  the issue's acceptance run: generate a training cohort and a held-out cohort (another seed), train
              the cpu preset, report AUROC on the held-out crops and the paper's baseline at 220 on the same crops

Run (2-core CPU machine):
  .venv/bin/python benchmarks/bench_classifier.py latency [--size 224] [--pooling none] [--repeats 30]
  .venv/bin/python benchmarks/bench_classifier.py epoch --data DATASET [--presets smoke,cpu,paper] [--crops 96]
  .venv/bin/python benchmarks/bench_classifier.py acceptance --work /tmp/avc-acc [--train-patients 500
        --train-seed 404 --test-patients 60 --test-seed 900303 --prevalence 0.5 --extra-test-seeds 900505
        --reuse-model --json out.json]

acceptance: the cohorts are made once per --work folder (synth -> ingest -> dataset build) and reused; after a
change to the generator use a fresh folder. Held-out cohorts come from evaluation seeds only (docs/evaluation.md;
the run refuses a tuning seed) and are never filtered: every file ingest can read is kept
(echoavc.synth.study.make_study(held_out=True)), and files it cannot read are counted. --extra-test-seeds evaluates the same model on further held-out
cohorts (same size as the test cohort); --reuse-model skips training when --work/model holds a trained model.
On a 2-core machine shared with other jobs use --threads 1: with 2 torch threads an epoch took 260-330 s
instead of 14-20 s (thread oversubscription).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from echoavc.runtime import machine


# ---------------------------------------------------------------- latency


def bench_latency(args) -> dict:
    import torch

    from echoavc.classifier.model import build
    from echoavc.classifier.predict import OnnxBackend, export_onnx
    from echoavc.settings import CLASSIFIER_BACKBONES

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    out = {}
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    for name in args.backbones.split(",") if args.backbones else CLASSIFIER_BACKBONES:
        torch.manual_seed(0)
        m = build(name, args.pooling, input_size=args.size).eval()
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            for _ in range(3):
                m(xt)
            t = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                z_eager = m(xt)
                t.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as d:
            path = export_onnx(m, Path(d) / "m.onnx")
            ort = OnnxBackend(path, args.threads)
            for _ in range(3):
                ort(x)
            u = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                z_onnx = ort(x)
                u.append(time.perf_counter() - t0)
        out[name] = {"eager_ms": round(1000 * float(np.median(t)), 2), "onnx_ms": round(1000 * float(np.median(u)), 2),
                     "logit": float(z_eager.numpy()[0]),
                     "max_abs_diff": float(np.abs(z_eager.numpy() - z_onnx).max()),
                     "max_rel_diff": float((np.abs(z_eager.numpy() - z_onnx) / np.maximum(1.0, np.abs(z_onnx))).max()),
                     "params_M": round(sum(p.numel() for p in m.parameters()) / 1e6, 2)}
        print(name, out[name], flush=True)
    return {"size": args.size, "pooling": args.pooling, "repeats": args.repeats, "results": out}


# ---------------------------------------------------------------- epoch time


def bench_epoch(args) -> dict:
    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.train import fit_model, set_threads, training_samples as _expand
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.settings import classifier_preset

    table = DatasetTable.load(args.data)
    split = Split.load(Path(args.data) / "split.json")
    samples = [s for s in load_samples(table, split) if s.part == "train"]
    rng = np.random.default_rng(0)
    if args.crops and len(samples) > args.crops:
        samples = [samples[i] for i in sorted(rng.choice(len(samples), args.crops, replace=False))]
    out = {}
    for preset in args.presets.split(","):
        s = classifier_preset(preset, threads=args.threads, pretrained="none")
        set_threads(s)
        train = _expand(samples, s, 0)
        src = CropSource(table, s.crop, s.noise_reduction, max_jitter=s.crop.jitter)
        src.batch(train)  # read the images once: the timing is the training step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, fr = fit_model(src, train, [], s, 0, epochs=args.epochs)
        per_epoch = float(np.median([h["seconds"] for h in fr.history]))
        out[preset] = {"backbone": s.backbone, "pooling": s.pooling, "size": s.crop.size, "batch": s.batch,
                       "train_crops_per_epoch": len(train), "seconds_per_epoch": round(per_epoch, 2),
                       "ms_per_crop": round(1000 * per_epoch / len(train), 1), "default_epochs": s.epochs}
        print(preset, out[preset], flush=True)
    return {"data": str(args.data), "original_train_crops": len(samples), "results": out}


# ---------------------------------------------------------------- acceptance


def _cohort(work: Path, name: str, patients: int, seed: int, prevalence: float, key: Path) -> Path:
    """synth -> ingest -> dataset build; boxes of frames whose cone was not found are dropped (listed)."""
    import pandas as pd

    exe = [sys.executable, "-m", "echoavc.cli"]
    c, ing, ds = work / f"{name}_cohort", work / f"{name}_ingested", work / f"{name}_table"
    if not (ds / "table.csv").is_file():
        if not (c / "maxqda_valves.csv").is_file():
            subprocess.run(exe + ["synth", "--patients", str(patients), "--out", str(c), "--seed", str(seed),
                                  "--prevalence", str(prevalence), "--no-progress"], check=True)
        if not (ing / "manifest.csv").is_file():
            subprocess.run(exe + ["ingest", str(c / "dicom"), "--out", str(ing), "--key", str(key), "--no-progress"],
                           check=False, stderr=subprocess.DEVNULL)
        boxes, views = c / "maxqda_valves.csv", c / "frames.csv"
        for attempt in range(3):
            r = subprocess.run(exe + ["dataset", "build", "--manifest", str(ing / "manifest.csv"), "--boxes",
                                      str(boxes), "--format", "maxqda", "--space", "original", "--labels",
                                      str(c / "labels.csv"), "--views", str(views), "--key", str(key), "--out",
                                      str(ds)], capture_output=True, text=True)
            if r.returncode == 0:
                break
            # a frame whose cone was mis-found puts its box outside the standard image: drop those frames
            pr = pd.read_csv(ds / "problems.csv")
            bad = {w.split(" ")[0] for w in pr.loc[pr["level"] == "error", "where"]}
            print(f"{name}: dropping {len(bad)} frame(s) with build errors (cone failures)", flush=True)
            m = pd.read_csv(boxes)
            m[~m["image"].isin(bad)].to_csv(c / "maxqda_kept.csv", index=False)
            f = pd.read_csv(views, dtype={"source_sha256": str})
            f[~(f["source_sha256"] + ":" + f["frame_index"].astype(str)).isin(bad)].to_csv(c / "frames_kept.csv",
                                                                                              index=False)
            boxes, views = c / "maxqda_kept.csv", c / "frames_kept.csv"
        else:
            raise SystemExit(f"dataset build failed for {name}: {r.stderr[-500:]}")
    return ds


def _held_out_cohort(work: Path, name: str, patients: int, seed: int) -> tuple[Path, dict]:
    """A held-out cohort, never filtered (every readable file kept; unreadable ones counted)."""
    import json as _json

    from echoavc.synth.study import make_study

    folder = work / name
    info_file = folder / "study.json"
    if not info_file.is_file():
        _, _, info = make_study(folder, patients, seed, train=1.0, val=0.0, test=0.0, prevalence=0.36,
                                held_out=True)
        info_file.write_text(_json.dumps(info, default=str))
    return folder / "table", _json.loads(info_file.read_text())


def bench_acceptance(args) -> dict:
    from sklearn.metrics import roc_auc_score

    from echoavc.classifier.baseline import paper_call
    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.evaluate import baseline_crops
    from echoavc.classifier.predict import Classifier
    from echoavc.classifier.train import train_classifier
    from echoavc.dataset import make_split
    from echoavc.dataset.table import DatasetTable
    from echoavc.evaluate import classification_report
    from echoavc.settings import SplitSettings, classifier_preset

    # refused before any work: a report on a tuning seed would be optimistic
    from echoavc.evaluate.seeds import require_evaluation_seed

    extra_seeds = [int(x) for x in args.extra_test_seeds.split(",") if x.strip()]
    for seed in [args.test_seed, *extra_seeds]:
        try:
            require_evaluation_seed(seed, "classifier benchmark's held-out cohort")
        except Exception as exc:
            raise SystemExit(str(exc)) from None
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    key = work / "keys" / "bench.key"
    t0 = time.perf_counter()
    train_ds = _cohort(work, "train", args.train_patients, args.train_seed, args.prevalence, key)
    test_ds, test_info = _held_out_cohort(work, f"test{args.test_seed}", args.test_patients, args.test_seed)
    t_data = time.perf_counter() - t0
    table = DatasetTable.load(train_ds)
    split_path = train_ds / "split.json"
    if not split_path.is_file():
        make_split(table.frame, SplitSettings(train=0.8, val=0.2, test=0.0, k=0, seed=0),
                   table.fingerprint).save(split_path)
    s = classifier_preset("cpu", threads=args.threads, pretrained="none")
    if args.epochs:
        s = replace(s, epochs=args.epochs)
    t1 = time.perf_counter()
    if args.reuse_model and (work / "model" / "classifier.json").is_file():
        meta = json.loads((work / "model" / "classifier.json").read_text())
        print("reusing the trained model in", work / "model", flush=True)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = train_classifier(table, split_path, work / "model", s, log=lambda m: print(m, flush=True)).meta
    t_train = time.perf_counter() - t1
    clf = Classifier.load(work / "model")

    def held_out(ds: Path, seed: int) -> dict:
        test = DatasetTable.load(ds)
        samples = load_samples(test)
        crops = CropSource(test, clf.crop, clf.noise_reduction).test_batch(samples)
        p = clf.predict_proba(crops, per_box=clf.boxes_per_probability)
        y = np.array([x.label for x in samples])
        g = np.array([x.grade or 0 for x in samples])
        groups = np.array([x.patient_id for x in samples])
        rep = classification_report(y, p, clf.threshold, groups=groups, grades=g)
        bc = baseline_crops(test, samples, clf.crop.margin)
        base = {t: float((paper_call(bc, t) == y.astype(bool)).mean()) for t in (190, 200, 210, 220)}
        by_grade = {int(k): float(roc_auc_score(np.r_[np.ones((g == k).sum()), np.zeros((y == 0).sum())],
                                                np.r_[p[g == k], p[y == 0]])) for k in (1, 2, 3) if (g == k).any()}
        return {
            "test": {"patients": len(set(groups)), "seed": seed, "crops": int(len(y)), "positives": int(y.sum()),
                     "by_grade": {int(k): int((g == k).sum()) for k in (0, 1, 2, 3)}},
            "auroc": rep["metrics"]["auroc"].to_dict(), "auroc_by_grade_vs_normals": by_grade,
            "threshold": clf.threshold, "accuracy_at_threshold": rep["metrics"]["accuracy"].to_dict(),
            "recall": rep["metrics"]["recall"].to_dict(), "specificity": rep["metrics"]["specificity"].to_dict(),
            "baseline_accuracy": base,
            "pass": bool(rep["metrics"]["auroc"].estimate >= 0.9 and base[220] <= 0.75 and len(y) >= 60
                         and y.sum() >= 20 and (g == 1).any()),
        }

    main_test = held_out(test_ds, args.test_seed)
    main_test["test"]["unreadable_files"] = test_info.get("unreadable_files")
    res = {
        "train": {"patients": args.train_patients, "seed": args.train_seed, "prevalence": args.prevalence,
                  "crops": meta["data"]["parts"]},
        "settings": {"backbone": s.backbone, "pooling": s.pooling, "size": s.crop.size, "epochs": s.epochs,
                     "batch": s.batch, "lr": s.lr, "threads": args.threads},
        "best_epoch": meta["fit"]["best_epoch"], "epochs_run": len(meta["fit"]["history"]),
        **main_test,
        "seconds": {"data": round(t_data, 1), "train": round(t_train, 1) if not args.reuse_model else None,
                    "train_recorded": meta["data"].get("train_seconds")},
    }
    extra = {}
    for seed in extra_seeds:
        if seed in (args.train_seed, args.test_seed):
            raise SystemExit(f"--extra-test-seeds: {seed} is already used")
        ds, info = _held_out_cohort(work, f"test{seed}", args.test_patients, seed)
        extra[seed] = held_out(ds, seed)
        extra[seed]["test"]["unreadable_files"] = info.get("unreadable_files")
    if extra:
        res["extra_held_out"] = extra
        res["pass_all_held_out"] = bool(res["pass"] and all(v["pass"] for v in extra.values()))
    print(json.dumps(res, indent=1), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("latency")
    a.add_argument("--size", type=int, default=224)
    a.add_argument("--pooling", default="none")
    a.add_argument("--repeats", type=int, default=30)
    a.add_argument("--backbones", default="")
    a.add_argument("--threads", type=int, default=0)
    e = sub.add_parser("epoch")
    e.add_argument("--data", required=True)
    e.add_argument("--presets", default="smoke,cpu,paper")
    e.add_argument("--crops", type=int, default=96, help="training crops sampled (0: all)")
    e.add_argument("--epochs", type=int, default=2)
    e.add_argument("--threads", type=int, default=0)
    c = sub.add_parser("acceptance")
    c.add_argument("--work", required=True)
    c.add_argument("--train-patients", type=int, default=500)
    c.add_argument("--train-seed", type=int, default=404)
    c.add_argument("--prevalence", type=float, default=0.5)
    c.add_argument("--test-patients", type=int, default=60)
    c.add_argument("--test-seed", type=int, default=900_303, help="an evaluation seed (docs/evaluation.md)")
    c.add_argument("--epochs", type=int, default=0)
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--extra-test-seeds", default="", help="comma-separated seeds of further held-out cohorts")
    c.add_argument("--reuse-model", action="store_true", help="skip training when --work/model has a model")
    for p in (a, e, c):
        p.add_argument("--json", default="")
    args = ap.parse_args()
    from echoavc import runtime

    runtime.configure(offline=True)
    res = {"latency": bench_latency, "epoch": bench_epoch, "acceptance": bench_acceptance}[args.cmd](args)
    doc = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "hardware": machine(), **res}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
