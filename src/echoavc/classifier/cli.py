"""``echoavc classifier ...``: train, evaluate, explain (Grad-CAM), export (ONNX). Registered by echoavc.cli."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from echoavc.cliutil import DataOpt, SplitOpt, fail, split_file, user_warnings
from echoavc.errors import EchoAVCError
from echoavc.settings import (
    BALANCES, CALIBRATIONS, CLASSIFIER_POOLINGS, CROSS_VALIDATE, ROTATIONS, THRESHOLD_RULES,
)

classifier_app = typer.Typer(name="classifier", help="Calcification classifier on valve crops (docs/classifier.md).",
                             no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True)
out = Console(soft_wrap=True)




@classifier_app.command("train")
def train_cmd(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder: model.safetensors, classifier.json.")],
    split: SplitOpt = None,
    preset: Annotated[str, typer.Option("--preset", help="paper | cpu | smoke")] = "cpu",
    fold: Annotated[Optional[int], typer.Option("--fold", help="Validate on this fold of the split.")] = None,
    backbone: Annotated[Optional[str], typer.Option("--backbone", help="timm name (paper's six: efficientnet_b0, "
                                                    "efficientnet_b4, resnetv2_50, resnetv2_152, "
                                                    "mobilenetv3_small_100, mobilenetv3_large_100).")] = None,
    pooling: Annotated[Optional[Literal[CLASSIFIER_POOLINGS]], typer.Option("--pooling")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="Starting weights: none (from "
                                                      "scratch, the default) | PATH | a name from `echoavc weights "
                                                      "list` | auto (cached weights of the backbone if any). "
                                                      "Never downloads.")]
    = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", "--batch-size", min=1, help="Crops per step "
                                                 "(--batch-size is the old name).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", min=0, help="0: no early stopping.")] = None,
    crop_size: Annotated[Optional[int], typer.Option("--crop-size", min=32)] = None,
    margin: Annotated[Optional[float], typer.Option("--margin", min=0.0)] = None,
    jitter: Annotated[Optional[float], typer.Option("--jitter", min=0.0, max=0.5)] = None,
    test_boxes: Annotated[Optional[int], typer.Option("--test-boxes", min=1, max=32, help="Boxes one probability "
                                                      "averages when the model predicts: the box and fixed shifts "
                                                      "within --jitter (1: the box alone; cpu preset 8).")] = None,
    noise_reduction: Annotated[Optional[bool], typer.Option("--noise-reduction/--no-noise-reduction")] = None,
    balance: Annotated[Optional[Literal[BALANCES]], typer.Option("--balance")] = None,
    rotation: Annotated[Optional[Literal[ROTATIONS]], typer.Option("--rotation")] = None,
    calibration: Annotated[Optional[Literal[CALIBRATIONS]], typer.Option("--calibration")] = None,
    threshold_rule: Annotated[Optional[Literal[THRESHOLD_RULES]], typer.Option("--threshold-rule")] = None,
    min_recall: Annotated[Optional[float], typer.Option("--min-recall", min=0.0, max=1.0)] = None,
    cross_validate: Annotated[Optional[Literal[CROSS_VALIDATE]], typer.Option("--cross-validate")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    members: Annotated[Optional[int], typer.Option("--members", min=1, help="Networks trained with seeds SEED, "
                                                   "SEED+1, ... and served as one (their mean logit, calibrated "
                                                   "together); 1: a single network.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=0, help="0: every core.")] = None,
    grade_loss: Annotated[Optional[float], typer.Option("--grade-loss", min=0.0, help="Weight of the auxiliary "
                                                        "ordinal loss on graded crops (cpu preset 1.0; 0: the binary "
                                                        "loss alone). Used only when the labels carry grades.")]
    = None,
) -> None:
    """Train, calibrate and save a classifier on the patient split (augment and balance the training part only)."""
    from echoavc.classifier.train import train_classifier
    from echoavc.settings import CropSettings, classifier_preset

    try:
        base = classifier_preset(preset)
        crop = None
        if crop_size is not None or margin is not None or jitter is not None or test_boxes is not None:
            c = base.crop
            crop = CropSettings(size=crop_size or c.size, margin=c.margin if margin is None else margin,
                                jitter=c.jitter if jitter is None else jitter,
                                test_boxes=c.test_boxes if test_boxes is None else test_boxes)
        s = classifier_preset(preset, backbone=backbone, pooling=pooling, pretrained=pretrained, epochs=epochs,
                              batch=batch, lr=lr, patience=patience, crop=crop,
                              noise_reduction=noise_reduction, balance=balance, rotation=rotation,
                              calibration=calibration, threshold_rule=threshold_rule, min_recall=min_recall,
                              cross_validate=cross_validate, seed=seed, members=members, threads=threads,
                              grade_loss=grade_loss)
        with user_warnings():
            trained = train_classifier(data, split_file(data, split), out_dir, s, fold=fold,
                                       log=lambda m: err.print(m, highlight=False))
    except (EchoAVCError, ValueError) as exc:
        fail(exc if isinstance(exc, EchoAVCError) else EchoAVCError(str(exc)))
    m = trained.meta
    out.print(f"{s.backbone}/{s.pooling} ({m['weights_source']}): calibration {trained.calibration.method} on "
              f"{m['calibration_data']['kind']} ({m['calibration_data']['crops']} crops), threshold "
              f"{trained.threshold:.3f} ({s.threshold_rule}) -> {out_dir}", highlight=False)


def _load(model: Path, backend: str):
    from echoavc.classifier.predict import Classifier

    return Classifier.load(model, backend=backend)


@classifier_app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder (echoavc classifier train).")],
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="report.json, predictions.csv, reliability.png.")],
    split: SplitOpt = None,
    part: Annotated[str, typer.Option("--part", help="train | val | test")] = "test",
    all_crops: Annotated[bool, typer.Option("--all", help="Every labelled crop of DATA, no split "
                                                       "(a held-out cohort).")]
    = False,
    backend: Annotated[str, typer.Option("--backend", help="torch | onnx")] = "torch",
    n_boot: Annotated[int, typer.Option("--n-boot", min=100)] = 2000,
) -> None:
    """Metrics with 95% intervals (patient bootstrap, Wilson/Clopper-Pearson), recall by grade and vendor,
    reliability diagram; the paper's baseline on the same crops."""
    from echoavc.classifier.evaluate import evaluate_classifier

    try:
        clf = _load(model, backend)
        res = evaluate_classifier(clf, data, None if all_crops else split_file(data, split), part, out_dir,
                                  n_boot=n_boot)
    except EchoAVCError as exc:
        fail(exc)
    r = res["report"]
    out.print(f"{res['n_crops']} crops, {res['n_patients']} patients, threshold {res['threshold']:.3f}:",
              highlight=False)
    for name, iv in r["metrics"].items():
        out.print(f"  {name:18s} {iv}", highlight=False)
    for g, e in r["recall_by_grade"].items():
        out.print(f"  recall grade {g:<5} {e['primary']}", highlight=False)
    for t, b in res.get("baseline", {}).items():
        out.print(f"  paper baseline {t}: accuracy {b['metrics']['accuracy']}", highlight=False)
    out.print(f"-> {out_dir}", highlight=False)


@classifier_app.command("explain")
def explain_cmd(
    model: Annotated[Path, typer.Option("--model", help="Model folder.")],
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Grad-CAM overlays (PNG) and index.csv.")],
    split: SplitOpt = None,
    part: Annotated[str, typer.Option("--part")] = "test",
    n: Annotated[int, typer.Option("--n", min=1, help="Crops to explain.")] = 8,
) -> None:
    """Grad-CAM heat maps over classified crops, saved as overlays."""
    from echoavc.classifier.explain import explain_part
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable

    try:
        rows = explain_part(_load(model, "torch"), DatasetTable.load(data), Split.load(split_file(data, split)),
                            part, n, out_dir)
    except EchoAVCError as exc:
        fail(exc)
    out.print(f"{len(rows)} overlays -> {out_dir}", highlight=False)


@classifier_app.command("export")
def export_cmd(model: Annotated[Path, typer.Option("--model", help="Model folder.")]) -> None:
    """Export the network to ONNX (model.onnx beside the weights); the settings stay in classifier.json."""
    from echoavc.classifier.predict import ONNX_FILE, export_onnx, load_model

    try:
        net, _ = load_model(model)
        path = export_onnx(net, Path(model) / ONNX_FILE)
    except EchoAVCError as exc:
        fail(exc)
    out.print(f"-> {path}", highlight=False)
