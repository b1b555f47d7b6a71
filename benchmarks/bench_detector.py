"""Detector benchmarks: the acceptance run, predict latency (PyTorch eager vs onnxruntime), training speed.

    python benchmarks/bench_detector.py acceptance --work /tmp/bench_det [--threads 0]
    python benchmarks/bench_detector.py latency    --work /tmp/bench_det [--weights best.pt] [--n 30]
    python benchmarks/bench_detector.py train-speed --work /tmp/bench_det [--presets smoke,cpu,paper]

acceptance: generates a training cohort (40 patients, seed 101, split 80/10/10 by patient) and a held-out cohort
(20 patients, evaluation seed 900202, never filtered: patients and images never seen in training or tuning),
trains the ``cpu`` preset from scratch, and
scores every frame of the held-out cohort: the detector, and a predictor that always answers the mean training
box. Targets: detector mAP50 >= 0.9, mean box mAP50 <= 0.3, false detections on other views <= 5%. It then
exports ONNX and checks that ONNX and PyTorch top boxes agree (IoU >= 0.99) on the held-out frames and on real
echo clips of pydicom-data taken through ingest. Results: ``<work>/acceptance.json``.

latency: per 640 standard image (pre- and post-processing included), batch 1, median over ``--n`` calls after
warm-up, PyTorch eager and onnxruntime in the same process, for the paper's model (yolov5su at 640, built from
yaml: latency does not depend on the weights' values) and the cpu preset's (yolov5nu at its size).

train-speed: seconds per training image per epoch (the training pass, validation excluded; median over epochs)
for each preset, on the training cohort, for 2 epochs each.

Every result holds the command line and the hardware. Runs take minutes on 2 cores (see docs/detector.md).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _hardware() -> dict:
    import os

    from echoavc.runtime import machine

    info = machine()
    try:
        info["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    return info


#: the held-out cohort's seed: an evaluation seed (docs/evaluation.md); 202, used before, was tuned on
HELDOUT_SEED = 900_202


def _study(work: Path, name: str, patients: int, seed: int, held_out: bool = False):
    """A study; a held-out one is never filtered and must come from an evaluation seed."""
    from echoavc.dataset import DatasetTable, Split
    from echoavc.synth.study import make_study

    if held_out:
        from echoavc.evaluate.seeds import require_evaluation_seed

        require_evaluation_seed(seed, "detector benchmark's held-out cohort")
    folder = work / name
    if (folder / "table" / "split.json").is_file():
        return DatasetTable.load(folder / "table"), Split.load(folder / "table" / "split.json")
    t, s, info = make_study(folder, patients, seed, held_out=held_out)
    print(f"{name}: {info}", flush=True)
    return t, s


def _write(path: Path, doc: dict) -> None:
    doc = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "hardware": _hardware(), **doc}
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(json.dumps(doc, indent=1, default=str))


def acceptance(work: Path, threads: int) -> dict:
    import numpy as np
    import pandas as pd

    from echoavc.detector.evaluate import MeanBoxPredictor, evaluate, training_boxes
    from echoavc.detector.export import export_onnx
    from echoavc.detector.predict import Detector, read_image
    from echoavc.detector.train import train_from_table
    from echoavc.evaluate.detection import iou_many
    from echoavc.settings import detector_preset

    table, split = _study(work, "train40", 40, 101)
    held, _ = _study(work, f"heldout20-{HELDOUT_SEED}", 20, HELDOUT_SEED, held_out=True)
    settings = detector_preset("cpu", threads=threads, pretrained="none")
    t0 = time.perf_counter()
    res = train_from_table(table, split, work / "cpu_run", settings)
    train_s = time.perf_counter() - t0
    det = Detector(res.best, settings=settings)
    rep = evaluate(det, held, None, conf=settings.conf)
    base = evaluate(MeanBoxPredictor(training_boxes(table, split)), held, None, conf=settings.conf)
    onnx = export_onnx(res.best, work / "cpu_run" / "model.onnx")
    ox = Detector(onnx, settings=settings)

    def agreement(images):
        a, b = det.top(images, conf=0.0), ox.top(images, conf=0.0)
        ious = np.array([iou_many(x, y)[0] for x, y in zip(a.boxes, b.boxes)])
        return {"images": len(images), "min_iou": float(ious.min()), "all_ge_0.99": bool((ious >= 0.99).all()),
                "max_score_diff": float(np.nanmax(np.abs(a.scores - b.scores)))}

    frames = held.frame[held.frame["role"].isin(["valve", "background"])]
    synth_imgs = [read_image(held.image_file(p)) for p in frames["image_path"]]
    from echoavc.ingest import ingest
    from echoavc.synth.realism import reference_file

    names = ("color3d_jpeg_baseline.dcm", "US1_UNCR.dcm", "OBXXXX1A.dcm")
    real = [reference_file(n) for n in names]  # never a download
    if None in real:
        missing = ", ".join(n for n, p in zip(names, real) if p is None)
        raise SystemExit(f"error: {missing} not installed (pip install pydicom-data); this benchmark never downloads")
    ing = work / "real_ingested"
    ingest(real, ing, work / "keys" / "real.key", progress=False)
    m = pd.read_csv(ing / "manifest.csv")
    real_imgs = [read_image(ing / p) for p in m["image_path"]]
    mm = {k: rep["metrics"][k] for k in rep["metrics"]}
    doc = {
        "model_name": res.model_name, "preset": "cpu", "settings": res.info["settings"],
        "train_seconds": round(train_s, 1), "epochs_run": res.info["epochs_run"],
        "train_images": res.info["images"]["train"],
        "heldout": {"frames": rep["n_images"], "valve": rep["n_with_valve"], "background": rep["n_background"],
                    "patients": rep["n_patients"], "seed": HELDOUT_SEED},
        "detector": {k: v.to_dict() for k, v in mm.items()},
        "false_detection_by_view": {v: {"k": d["false_detections"], "n": d["frames"]}
                                    for v, d in rep["false_detection_by_view"].items()},
        "no_detection": rep["no_detection"],
        "mean_box_baseline": {k: v.to_dict() for k, v in base["metrics"].items()},
        "targets": {"map50>=0.9": mm["map50"].estimate >= 0.9,
                    "mean_box_map50<=0.3": base["metrics"]["map50"].estimate <= 0.3,
                    "false_detection_rate<=0.05": mm["false_detection_rate"].estimate <= 0.05},
        "onnx_vs_torch": {"synthetic_heldout": agreement(synth_imgs), "pydicom_data_real": agreement(real_imgs)},
    }
    _write(work / "acceptance.json", doc)
    return doc


def latency(work: Path, weights: Path | None, n: int, threads: int) -> dict:
    import numpy as np
    import torch

    from echoavc import runtime
    from echoavc.detector.export import export_onnx
    from echoavc.detector.predict import Detector
    from echoavc.detector.train import stamp_checkpoint
    from echoavc.settings import DetectorSettings

    work.mkdir(parents=True, exist_ok=True)
    models = []
    # the paper's model at 640: an untrained yolov5su saved as a checkpoint (latency does not depend on values)
    from ultralytics import YOLO

    paper_pt = work / "latency_yolov5su_640.pt"
    if not paper_pt.is_file():
        y = YOLO("yolov5s.yaml")
        torch.save({"model": y.model.half(), "train_args": {"imgsz": 640}}, paper_pt)
        stamp_checkpoint(paper_pt, {"model_name": "yolov5su, untrained (latency only)", "imgsz": 640})
    runtime.all_cores()
    models.append(paper_pt)
    if weights is not None:
        models.append(Path(weights))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (640, 640), dtype=np.uint8)
    out = []
    s = DetectorSettings(threads=threads)
    for pt in models:
        onnx = export_onnx(pt, pt.with_suffix(".onnx"))
        row = {"weights": str(pt)}
        for kind, path in (("torch_eager", pt), ("onnxruntime", onnx)):
            det = Detector(path, settings=s)
            for _ in range(3):
                det.top([image])
            times = []
            for _ in range(n):
                t = time.perf_counter()
                det.top([image])
                times.append(time.perf_counter() - t)
            row["model_name"], row["imgsz"] = det.name, det.imgsz
            row[kind + "_ms"] = round(1000 * float(np.median(times)), 1)
            row[kind + "_ms_p90"] = round(1000 * float(np.percentile(times, 90)), 1)
        out.append(row)
    doc = {"n": n, "batch": 1, "input": "one 640x640 standard image, pre- and post-processing included",
           "threads": threads or runtime.all_cores(), "results": out}
    _write(work / "latency.json", doc)
    return doc


def train_speed(work: Path, presets: list[str], threads: int, epochs: int) -> dict:
    from echoavc.detector.train import train_from_table
    from echoavc.settings import detector_preset

    table, split = _study(work, "train40", 40, 101)
    out = []
    for name in presets:
        s = detector_preset(name, epochs=epochs, threads=threads, pretrained="none")
        res = train_from_table(table, split, work / f"speed_{name}", s)
        info = res.info
        out.append({"preset": name, "model_name": res.model_name, "imgsz": s.imgsz, "batch": s.batch,
                    "online_augment": s.online_augment, "train_images": info["images"]["train"],
                    "epoch_seconds": info["epoch_seconds"],
                    "seconds_per_image_epoch": info["train_pass_seconds_per_image"],
                    "threads": threads or "all"})
    doc = {"epochs": epochs, "results": out}
    _write(work / "train_speed.json", doc)
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["acceptance", "latency", "train-speed"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/echoavc-bench-detector"))
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--presets", default="smoke,cpu,paper")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    a = ap.parse_args(argv)
    import echoavc  # noqa: F401  (offline-safe environment first)

    a.work.mkdir(parents=True, exist_ok=True)
    if a.what == "acceptance":
        doc = acceptance(a.work, a.threads)
        return 0 if all(doc["targets"].values()) else 1
    if a.what == "latency":
        latency(a.work, a.weights, a.n, a.threads)
    else:
        train_speed(a.work, a.presets.split(","), a.threads, a.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
