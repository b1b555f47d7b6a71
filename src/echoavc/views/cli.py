"""``echoavc views train | evaluate | predict``: options mirror :mod:`echoavc.views`, defaults from ViewSettings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from echoavc.cliutil import DataOpt, SplitOpt, fail, split_file, user_warnings
from echoavc.errors import EchoAVCError
from echoavc.settings import ViewSettings

_VIEWS = ViewSettings()
console = Console()
views_app = typer.Typer(name="views", help="The view of each clip: psax_av, psax_mid, plax, a4c, other "
                        "(docs/views.md).", no_args_is_help=True)

ModelOpt = Annotated[Path, typer.Option("--model", help="View model folder (echoavc views train) or a bundle "
                                        "holding one.")]
BackendOpt = Annotated[Literal["torch", "onnx"], typer.Option("--backend")]


@views_app.command("train")
def train_command(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="View model folder to write.")],
    split: SplitOpt = None,
    backbone: Annotated[str, typer.Option("--backbone", help="timm network (from scratch).")] = _VIEWS.backbone,
    input_size: Annotated[int, typer.Option("--input-size", min=32, help="Side of the grey input (the "
                                            "standard image downscaled).")] = _VIEWS.input_size,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = _VIEWS.epochs,
    batch: Annotated[int, typer.Option("--batch", min=1)] = _VIEWS.batch,
    lr: Annotated[float, typer.Option("--lr")] = _VIEWS.lr,
    augment: Annotated[bool, typer.Option("--augment/--no-augment")] = _VIEWS.augment,
    frames_per_clip: Annotated[int, typer.Option("--frames-per-clip", min=0, help="Frames of a clip read when "
                                                 "screening (0: all).")] = _VIEWS.frames_per_clip,
    seed: Annotated[int, typer.Option("--seed")] = _VIEWS.seed,
    threads: Annotated[int, typer.Option("--threads", min=0)] = _VIEWS.threads,
) -> None:
    """Train the view network on the split's training patients (chosen on its validation patients)."""
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.views.train import train_views

    try:
        s = replace(_VIEWS, backbone=backbone, input_size=input_size, epochs=epochs, batch=batch, lr=lr,
                    augment=augment, frames_per_clip=frames_per_clip, seed=seed, threads=threads)
        with user_warnings():
            meta = train_views(DatasetTable.load(data), Split.load(split_file(data, split)), out, s,
                               log=lambda m: console.print(m, highlight=False, soft_wrap=True))
        if meta.get("validation"):
            from echoavc.views.evaluate import format_view_report

            console.print(format_view_report(meta["validation"]), highlight=False, soft_wrap=True)
    except (EchoAVCError, ValueError) as exc:
        fail(exc)


@views_app.command("evaluate")
def evaluate_command(
    data: DataOpt,
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Report folder: view_report.json, view_clips.csv, "
                                      "view_confusion.csv/.png.")],
    split: SplitOpt = None,
    part: Annotated[Literal["all", "train", "val", "test"], typer.Option("--part", help="all: every patient "
                                                                         "(a held-out cohort).")] = "test",
    backend: BackendOpt = "torch",
    n_boot: Annotated[int, typer.Option("--n-boot", min=100)] = 2000,
) -> None:
    """Clip view accuracy with its 95% interval, and the confusion matrix."""
    from echoavc.views.evaluate import format_view_report
    from echoavc.views.predict import evaluate_table

    try:
        rep = evaluate_table(model, data, out, split_file(data, split) if part != "all" else None, part, backend,
                             n_boot)
        console.print(format_view_report(rep), highlight=False, soft_wrap=True)
        console.print(f"report: {rep['files']['view_report.json']}; picture: {rep['files']['view_confusion.png']}",
                      highlight=False, soft_wrap=True)
    except (EchoAVCError, ValueError) as exc:
        fail(exc)


@views_app.command("predict")
def predict_command(
    src: Annotated[list[Path], typer.Argument(help="DICOM files, folders, zips, exported PNG/JPEG.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder: views.csv, failures.csv.")],
    backend: BackendOpt = "torch",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """The view of each file (the header first: M-mode and spectral Doppler are not 2D views)."""
    from echoavc.views.predict import views_of_files

    try:
        ingest = None
        if (Path(model) / "bundle.json").is_file():
            from echoavc.bundle import load_bundle

            ingest = load_bundle(model).ingest_settings()
        rows = views_of_files(src, model, out, ingest, backend, progress)
        for r in rows:
            p = r.get("view_probability")
            console.print(f"{r['source']}: {r['view'] or '-'}" + (f" (p={p:.2f}, {r['view_source']})" if p != "" and
                          p is not None else "") + (f" - {r['reason']}" if r["reason"] else ""),
                          highlight=False, soft_wrap=True)
    except (EchoAVCError, ValueError) as exc:
        fail(exc)
