"""``echoavc detector train | evaluate | predict | export`` (registered by :mod:`echoavc.cli`).

Options mirror :mod:`echoavc.detector`'s functions; presets and defaults live in ``DetectorSettings``.
User errors print one line ``<file>: <reason>`` (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from echoavc.cliutil import DataOpt, SplitOpt, fail, split_file, user_warnings
from echoavc.errors import EchoAVCError

detector_app = typer.Typer(name="detector", help="Train, evaluate, run and export the valve detector "
                           "(Ultralytics YOLO; docs/detector.md).", no_args_is_help=True,
                           pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True)
out = Console(soft_wrap=True)

PresetOpt = Annotated[str, typer.Option("--preset", help="paper (yolov5s 640, batch 32, 75 epochs) | cpu (minutes on "
                                        "2 cores) | smoke (tests).")]




def _settings(preset: str, **overrides):
    from echoavc.settings import detector_preset

    try:
        return detector_preset(preset, **overrides)
    except ValueError as exc:
        raise EchoAVCError(str(exc)) from None


def _is_yolo_folder(data: Path) -> bool:
    """True for a materialised YOLO folder or its data.yaml, False for a dataset folder (table.csv)."""
    data = Path(data)
    if data.suffix.lower() in (".yaml", ".yml"):
        return True
    return data.is_dir() and not (data / "table.csv").is_file() and (data / "data.yaml").is_file()


@detector_app.command("train")
def train_cmd(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder: data/, train/weights/best.pt, detector.json.")],
    split: SplitOpt = None,
    fold: Annotated[Optional[int], typer.Option("--fold", help="Fold of the split (default: main train/val/test).")]
    = None,
    augmentation: Annotated[str, typer.Option("--augmentation", help="Offline augmentation (Table 1 name or 1-7).")]
    = "original",
    preset: PresetOpt = "cpu",
    model: Annotated[Optional[str], typer.Option("--model", help="yolov5n | yolov5s | yolo11n | yolo11s")] = None,
    imgsz: Annotated[Optional[int], typer.Option("--imgsz", min=32)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", min=1)] = None,
    online_augment: Annotated[Optional[bool], typer.Option("--online-augment/--no-online-augment",
                                                           help="Ultralytics' mosaic/scale/translate/HSV.")] = None,
    domain_randomisation: Annotated[Optional[bool], typer.Option(
        "--domain-randomisation/--no-domain-randomisation", help="Opt-in albumentations intensity, blur, noise, "
        "resolution and colour transforms (docs/synth.md, sim-to-real).")] = None,
    style_from: Annotated[Optional[Path], typer.Option("--style-from", help="Opt-in: an `echoavc ingest` output "
                                                       "folder of your own unlabelled frames; training frames take "
                                                       "on their look (docs/detector.md).")] = None,
    style_method: Annotated[Optional[str], typer.Option("--style-method", help="With --style-from: histogram "
                                                        "(histogram matching) | fourier (low-frequency amplitude "
                                                        "swap).")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Start from this local checkpoint "
                                                    "(COCO-pretrained, an earlier run, or a synthetic-trained "
                                                    "detector to fine-tune on a few labelled frames).")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="Without --weights: none (from "
                                                      "scratch, the default) | PATH | a name from `echoavc weights "
                                                      "list` | auto (cached COCO weights if any). Never downloads.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, 0, ... (default: GPU when present).")]
    = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=0, help="Torch threads (0: every core; 1 is "
                                                   "faster on a machine busy with other work).")] = None,
    time_hours: Annotated[Optional[float], typer.Option("--time-hours", help="Stop after this many hours.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Ultralytics' progress output.")] = False,
) -> None:
    """Train the detector from the dataset folder and the shared split; DATA may also be an already
    materialised YOLO folder (or its data.yaml), trained on as it is (no --split, --fold, --augmentation)."""
    from echoavc.detector.train import train, train_from_table

    try:
        s = _settings(preset, model=model, imgsz=imgsz, epochs=epochs, batch=batch, online_augment=online_augment,
                      domain_randomisation=domain_randomisation, pretrained=pretrained, device=device,
                      workers=workers, seed=seed, time_hours=time_hours, threads=threads,
                      style_from=str(style_from) if style_from else None, style_method=style_method)
        if style_from is not None:
            from echoavc.detector.domain import style_reference_paths

            style_reference_paths(style_from)  # before any training work: a clear error for a wrong folder
        with user_warnings():
            if _is_yolo_folder(data):
                if split is not None:
                    raise EchoAVCError("--split is for a dataset folder; this is a materialised YOLO folder "
                                       "(its parts are fixed)", data)
                res = train(data, out_dir, s, weights, verbose)
            else:
                from echoavc.dataset import DatasetTable, Split

                t = DatasetTable.load(data)
                res = train_from_table(t, Split.load(split_file(data, split)), out_dir, s, fold, augmentation,
                                       weights=weights, verbose=verbose)
    except EchoAVCError as exc:
        fail(exc)
    v = res.info.get("ultralytics_val_on_best") or {}
    out.print(f"{res.model_name}: {res.info['epochs_run']} epochs in {res.info['train_seconds']:.0f} s "
              f"({res.info['seconds_per_image_epoch']:.3f} s per image per epoch); val mAP50 "
              f"{v.get('metrics/mAP50(B)', float('nan')):.3f} -> {res.best}, {res.metrics_file}", highlight=False)


@detector_app.command("evaluate")
def evaluate_cmd(
    weights: Annotated[Path, typer.Option("--weights", help="best.pt (PyTorch) or model.onnx (onnxruntime).")],
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder: evaluation.json, evaluation.md, predictions.csv.")],
    split: SplitOpt = None,
    part: Annotated[str, typer.Option("--part", help="train | val | test")] = "test",
    all_frames: Annotated[bool, typer.Option("--all", help="Every frame of DATA, no split (a held-out cohort).")]
    = False,
    fold: Annotated[Optional[int], typer.Option("--fold")] = None,
    conf: Annotated[Optional[float], typer.Option("--conf", min=0.0, max=1.0, help="Detection threshold.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=100)] = 2000,
    baseline: Annotated[bool, typer.Option("--mean-box-baseline", help="Also score the mean training box "
                                           "(not with --all).")] = False,
) -> None:
    """Precision, recall, F1, mAP50, mAP50-95, mean IoU, patient hit rate, false detections, with 95% intervals."""
    from echoavc.dataset import DatasetTable, Split
    from echoavc.detector.evaluate import METRICS, MeanBoxPredictor, evaluate, training_boxes, write_report
    from echoavc.detector.predict import Detector
    from echoavc.settings import DetectorSettings

    try:
        t = DatasetTable.load(data)
        if all_frames and split is not None:
            raise EchoAVCError("give --split or --all (every frame, no split), not both")
        sp = None if all_frames else Split.load(split_file(data, split))
        s = DetectorSettings()
        c = s.conf if conf is None else conf
        det = Detector(weights, settings=s)
        rep = evaluate(det, t, sp, part, fold, c, n_boot)
        paths = write_report(rep, out_dir)
        base = None
        if baseline:
            if sp is None:
                raise EchoAVCError("--mean-box-baseline needs a split (the training boxes), not --all")
            base = evaluate(MeanBoxPredictor(training_boxes(t, sp, fold)), t, sp, part, fold, c, n_boot)
            write_report(base, out_dir / "mean_box_baseline")
    except EchoAVCError as exc:
        fail(exc)
    out.print(f"{rep['model_name']} on {rep['n_images']} frames ({rep['n_with_valve']} valve, "
              f"{rep['n_background']} other views), {rep['n_patients']} patients:", highlight=False)
    for k in METRICS:
        line = f"  {k:<22}{rep['metrics'][k].format(3)}"
        if base is not None:
            line += f"   (mean training box: {base['metrics'][k].format(3)})"
        out.print(line, highlight=False)
    out.print(f"  {len(rep['no_detection'])} valve frame(s) without a detection -> {paths['markdown']}",
              highlight=False)


@detector_app.command("predict")
def predict_cmd(
    weights: Annotated[Path, typer.Option("--weights", help="model.onnx (onnxruntime) or best.pt (PyTorch).")],
    images: Annotated[list[Path], typer.Argument(help="Standard 640 frames (PNG/JPEG files or folders).")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV: image, found, x1, y1, x2, y2, score.")],
    conf: Annotated[Optional[float], typer.Option("--conf", min=0.0, max=1.0)] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto (by file suffix) | onnx | torch")] = "auto",
) -> None:
    """The valve's top box in each image (the image's own pixel coordinates)."""
    from echoavc.detector.images import TOP_BOX_COLUMNS, image_files, top_boxes
    from echoavc.detector.predict import Detector
    from echoavc.files import atomic_write_text, csv_text

    try:
        files = image_files(images)
        det = Detector(weights, backend=backend)
        rows = top_boxes(det, files, conf)
        atomic_write_text(out_file, csv_text(TOP_BOX_COLUMNS, rows))
    except EchoAVCError as exc:
        fail(exc)
    n = sum(r["found"] for r in rows)
    out.print(f"{det.name} ({det.backend.kind}): valve found in {n} of {len(rows)} images -> {out_file}",
              highlight=False)


@detector_app.command("export")
def export_cmd(
    weights: Annotated[Path, typer.Option("--weights", help="Checkpoint to export (train/weights/best.pt).")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="ONNX file (default: beside the weights).")] = None,
    imgsz: Annotated[Optional[int], typer.Option("--imgsz", help="Default: the training size.")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic/--static", help="Dynamic batch axis.")] = True,
) -> None:
    """Export to ONNX (simplified with onnxslim) for `echoavc detector predict` with onnxruntime."""
    from echoavc.detector.export import export_onnx

    try:
        path = export_onnx(weights, out_file, imgsz, dynamic)
    except EchoAVCError as exc:
        fail(exc)
    out.print(f"ONNX -> {path}", highlight=False)
