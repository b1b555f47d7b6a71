"""``echoavc dataset ...`` and ``echoavc augment``: Typer sub-apps registered by :mod:`echoavc.cli`.

Options mirror the Python functions. User errors print one line ``<file>: <reason>`` (exit 2);
validation problems print one line each, and errors among them exit 1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from echoavc.cliutil import DataOpt, SplitOpt, fail, split_file
from echoavc.errors import EchoAVCError
from echoavc.settings import (
    BALANCES, COORDINATE_SPACES, LABEL_IDS, UNKNOWN_VIEWS, CropSettings, DatasetSettings, LabelColumns,
    MaxqdaColumns, SplitSettings,
)

#: Defaults of the options below: the settings dataclasses' own.
_DATASET, _SPLIT, _CROP = DatasetSettings(), SplitSettings(), CropSettings()

dataset_app = typer.Typer(name="dataset", help="Build, split and materialise training data (docs/dataset.md).",
                          no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
augment_app = typer.Typer(name="augment", help="Check the augmentation: counts, rejections, a preview grid.",
                          pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True)
out = Console(soft_wrap=True)




def _pairs(values: list[str], what: str) -> dict[str, str]:
    outd = {}
    for v in values or []:
        if "=" not in v:
            raise EchoAVCError(f"{what} {v!r} is not NAME=HEADER")
        k, h = v.split("=", 1)
        outd[k.strip()] = h.strip()
    return outd


def _problem_lines(problems) -> None:
    for p in problems:
        colour = "red" if p.level == "error" else "yellow"
        err.print(f"[{colour}]{p.level}:[/{colour}] {p.where}: {p.message}", highlight=False, soft_wrap=True)


@dataset_app.command("build")
def build_cmd(
    manifest: Annotated[Path, typer.Option("--manifest", help="The ingest manifest.csv.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Table folder: table.csv, table.json, problems.csv.")],
    boxes: Annotated[Optional[Path], typer.Option("--boxes", help="Valve boxes: a file or a folder (yolo, voc).")]
    = None,
    fmt: Annotated[str, typer.Option("--format", help="maxqda | yolo | coco | voc | labelstudio | cvat")] = "maxqda",
    space: Annotated[Literal[COORDINATE_SPACES], typer.Option("--space", help="Coordinates of the boxes.")]
    = _DATASET.space,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Exam labels: exam, patient, calcified, grade.")]
    = None,
    key: Annotated[Optional[Path], typer.Option("--key", help="The pseudonym key ingest used.")] = None,
    views: Annotated[Optional[Path], typer.Option("--views", help="CSV of image key + view (e.g. synth frames.csv).")]
    = None,
    ingest_dir: Annotated[Optional[Path], typer.Option("--ingest-dir", help="Folder image paths are relative to "
                                                       "(default: the manifest's folder).")] = None,
    ids: Annotated[Literal[LABEL_IDS], typer.Option("--ids", help="Label ids.")] = _DATASET.ids,
    unknown_view: Annotated[Literal[UNKNOWN_VIEWS], typer.Option("--unknown-view", help="Unboxed frames of "
                                                                 "unknown view.")] = _DATASET.unknown_view,
    column: Annotated[list[str], typer.Option("--column", help="MAXQDA column name, NAME=HEADER "
                                              "(image, x, y, width, height, space, code).")] = [],
    label_column: Annotated[list[str], typer.Option("--label-column", help="Labels column, NAME=HEADER "
                                                    "(exam, patient, calcified, grade).")] = [],
    code: Annotated[list[str], typer.Option("--code", help="Keep only MAXQDA rows with this code.")] = [],
) -> None:
    """Join manifest, boxes, labels and views into one validated table."""
    from echoavc.dataset.table import build_dataset

    try:
        mq = replace(MaxqdaColumns(), **_pairs(column, "--column"), codes=tuple(code))
        lc = replace(LabelColumns(), **{k: (v,) for k, v in _pairs(label_column, "--label-column").items()})
        settings = replace(_DATASET, space=space, ids=ids, unknown_view=unknown_view, maxqda=mq, labels=lc)
        table = build_dataset(manifest, boxes, fmt, labels, key, views, settings, ingest_dir, out_dir)
    except EchoAVCError as exc:
        fail(exc)
    except TypeError as exc:  # an unknown NAME in --column / --label-column
        fail(EchoAVCError(f"unknown column name ({exc})"))
    _problem_lines(table.problems)
    if table.errors:
        err.print(f"{len(table.errors)} error(s), {len(table.warnings)} warning(s): no table written; "
                  f"see {out_dir / 'problems.csv'}", highlight=False)
        raise typer.Exit(1)
    c = table.counts()
    out.print(f"{c['frames']} frames ({', '.join(f'{v} {k}' for k, v in c['roles'].items())}), {c['patients']} patients,"
              f" {c['exams']} exams, {len(table.warnings)} warning(s) -> {out_dir / 'table.csv'}", highlight=False)


@dataset_app.command("split")
def split_cmd(
    data: DataOpt,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Split file (JSON; default DATA/split.json, "
                                                     "where every stage looks for it).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = _SPLIT.seed,
    k: Annotated[int, typer.Option("--k", min=0, help="Folds over the train+val patients (0: none).")] = _SPLIT.k,
    train: Annotated[float, typer.Option("--train")] = _SPLIT.train,
    val: Annotated[float, typer.Option("--val")] = _SPLIT.val,
    test: Annotated[float, typer.Option("--test")] = _SPLIT.test,
) -> None:
    """Split patients into train/val/test and k folds, stratified by highest grade; save once."""
    from echoavc.dataset.split import make_split
    from echoavc.dataset.table import DatasetTable

    try:
        t = DatasetTable.load(data)
        out_file = split_file(data, out_file)
        s = make_split(t.frame, SplitSettings(train=train, val=val, test=test, k=k, seed=seed), t.fingerprint)
        s.save(out_file)
    except EchoAVCError as exc:
        fail(exc)
    summary = "; ".join(f"{p}: {sum(v.values())} patients" for p, v in s.summary().items())
    out.print(f"{summary}; k={s.k}; {s.fingerprint} -> {out_file}", highlight=False)


@dataset_app.command("materialise")
def materialise_cmd(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (YOLO + crops).")],
    split: SplitOpt = None,
    fold: Annotated[Optional[int], typer.Option("--fold", help="Fold (default: the main train/val/test).")] = None,
    part: Annotated[list[str], typer.Option("--part", help="Parts to write (default: train, val, test).")] = [],
    augmentation: Annotated[str, typer.Option("--augmentation", help="Table 1: original, zoom, translation, "
                                              "rotation, gamma, all, translation+rotation (or 1-7); or online.")]
    = "original",
    balance: Annotated[Literal[BALANCES], typer.Option("--balance", help="Crops, train only.")] = "none",
    protocol: Annotated[str, typer.Option("--protocol", help="patient | paper (LEAKY image-level split).")]
    = "patient",
    paper_fractions: Annotated[str, typer.Option("--paper-fractions", help="train,val,test for --protocol paper "
                                                  "(which needs no --split).")]
    = "0.8,0.1,0.1",
    crops: Annotated[bool, typer.Option("--crops/--no-crops", help="Write classifier crops.")] = True,
    crop_size: Annotated[int, typer.Option("--crop-size", min=16)] = _CROP.size,
    margin: Annotated[float, typer.Option("--margin", min=0.0)] = _CROP.margin,
    jitter: Annotated[float, typer.Option("--jitter", min=0.0, max=0.5)] = _CROP.jitter,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Write a YOLO folder with data.yaml and classifier crops for one fold and augmentation set."""
    from echoavc.dataset.folders import materialise

    try:
        fr = [float(x) for x in paper_fractions.split(",")]
        if len(fr) != 3:
            raise EchoAVCError("--paper-fractions needs three numbers: train,val,test")
        sp = split if protocol == "paper" else split_file(data, split)  # the paper's protocol needs none
        rep = materialise(data, sp, out_dir, fold=fold, parts=tuple(part) or ("train", "val", "test"),
                          augmentation=augmentation, balance=balance, protocol=protocol, crops=crops,
                          crop_settings=CropSettings(size=crop_size, margin=margin, jitter=jitter), seed=seed,
                          paper_fractions=dict(zip(("train", "val", "test"), fr)), overwrite=overwrite,
                          progress=progress)
    except EchoAVCError as exc:
        fail(exc)
    except ValueError as exc:
        fail(EchoAVCError(str(exc)))
    for r in rep.rejected:
        err.print(f"[yellow]rejected:[/yellow] {r['key']} {r['variant']}: {r['reason']}", highlight=False,
                  soft_wrap=True)
    if rep.leaky:
        err.print("[red]" + rep.meta["leakage"]["warning"] + "[/red]", highlight=False, soft_wrap=True)
        err.print(f"  {rep.meta['leakage']['patients_in_several_parts']} patient(s) in several parts", highlight=False)
    for p, c in rep.counts.items():
        out.print(f"{p}: " + ", ".join(f"{v} {k}" for k, v in c.items()), highlight=False)
    out.print(f"{len(rep.rejected)} variant(s) rejected -> {rep.out / 'data.yaml'}", highlight=False)


@dataset_app.command("export")
def export_cmd(
    data: DataOpt,
    out_path: Annotated[Path, typer.Option("--out", help="File (coco, maxqda, labelstudio, cvat) or folder (yolo, voc).")],
    fmt: Annotated[str, typer.Option("--format", help="yolo | coco (and maxqda, voc, labelstudio, cvat).")] = "coco",
    space: Annotated[Literal[COORDINATE_SPACES], typer.Option("--space")] = "standard",
    background: Annotated[bool, typer.Option("--background/--no-background", help="Include background frames "
                                             "(empty YOLO files, box-less COCO images).")] = True,
) -> None:
    """Export the table's valve boxes in another format and coordinate space."""
    from echoavc.dataset.table import DatasetTable, export_boxes

    try:
        t = DatasetTable.load(data)
        n = export_boxes(t, out_path, fmt, space, background)
    except EchoAVCError as exc:
        fail(exc)
    out.print(f"{n} box(es), {fmt}, {space} space -> {out_path}", highlight=False)


@augment_app.callback(invoke_without_command=True)
def augment_cmd(
    data: DataOpt,
    augmentation: Annotated[str, typer.Option("--augmentation", help="Table 1 experiment (name or 1-7) or "
                                              "techniques joined by '+'.")] = "all",
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Write a PNG grid of augmented images with "
                                                    "their boxes.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Images in the preview.")] = 6,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Count the variants the paper's techniques make from the valve frames, and which are rejected;
    --preview writes a grid for a person to check."""
    import cv2

    from echoavc.dataset.augment import check_augmentation, fixed_techniques, table_preview
    from echoavc.dataset.table import DatasetTable
    from echoavc.files import atomic_write_bytes

    try:
        t = DatasetTable.load(data)
        techniques = fixed_techniques(augmentation)
        if preview is not None:
            grid, shown = table_preview(t, techniques, n, seed, where=data)
            atomic_write_bytes(preview, cv2.imencode(".png", grid)[1].tobytes())
            out.print(f"preview of {shown} image(s) -> {preview}", highlight=False)
            return
        check = check_augmentation(t, techniques, where=data)
    except EchoAVCError as exc:
        fail(exc)
    for key, variant, reason in check.rejected:
        err.print(f"[yellow]rejected:[/yellow] {key} {variant}: {reason}", highlight=False, soft_wrap=True)
    out.print(f"{check.frames} valve frames -> {check.frames + check.kept} images with {augmentation} "
              f"({check.kept} variants kept, {len(check.rejected)} rejected); applied to the training part only",
              highlight=False)
