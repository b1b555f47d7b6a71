"""``echoavc evaluate``: the whole screening path of a model bundle on labelled data no training choice touched.

Registered in :mod:`echoavc.cli` as ``app.command("evaluate")(evaluate_command)``; ``echoavc threshold-odds``
(:mod:`echoavc.evaluate.planning`: will a validation-chosen threshold hold on new exams) beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echoavc.cliutil import DATA_HELP, SplitOpt, err, fail
from echoavc.evaluate import planning
from echoavc.errors import EchoAVCError
from echoavc.settings import ScreeningSettings

__all__ = ["evaluate_command", "threshold_odds_command"]

#: the exam threshold rule ``echoavc train`` uses by default: threshold-odds' defaults
_SCREENING = ScreeningSettings()


def evaluate_command(
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder (echoavc train).")],
    out: Annotated[Path, typer.Option("--out", help="Report folder: evaluation.md/.json, exams.csv, PNGs.")],
    # the CLI's shared --data spelling (cliutil.DataOpt), optional here: --exams is the other source
    data: Annotated[Optional[Path], typer.Option("--data", "--table", metavar="DATASET", help=DATA_HELP,
                                                 show_default=False)] = None,
    part: Annotated[str, typer.Option("--part", help="Part of the split: test (held out), val (optimistic), "
                                      "train.")] = "test",
    split: SplitOpt = None,
    exams: Annotated[Optional[list[Path]], typer.Option("--exams", help="DICOM files, folders or zips of raw "
                                                        "exams (with --labels).")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="labels.csv: one row per exam (Study "
                                                   "Instance UID, patient, calcified, grade).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto | torch | onnx")] = "auto",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Files screened in parallel (--exams).")] = 1,
    n_boot: Annotated[int, typer.Option("--n-boot", min=100, help="Patient bootstrap resamples.")] = 1000,
    key: Annotated[Optional[Path], typer.Option("--key", help="--exams: the ingest key: exam ids (and the labels "
                   "joined to them) become the keyed study pseudonyms ingest uses; without it, an unkeyed "
                   "hash.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Metrics of the whole screening path, with intervals, on a dataset's test part or on labelled raw exams."""
    from echoavc.evaluate.heldout import evaluate_dataset, evaluate_exams

    try:
        if (data is None) == (not exams):
            raise EchoAVCError("give either --data DATASET or --exams DICOM_DIR --labels labels.csv")
        for name, given in (("--key", key), ("--labels", labels)):
            if given is not None and not exams:  # a dataset's exam ids and labels are already in its table
                raise EchoAVCError(f"{name} applies to --exams only (a dataset's table already holds its ids "
                                   "and labels)", given)
        if exams:
            if labels is None:
                raise EchoAVCError("--exams needs --labels labels.csv")
            rep = evaluate_exams(model, list(exams), labels, out, backend, workers, n_boot, progress, key=key)
        else:
            rep = evaluate_dataset(model, data, part, split or (data / "split.json"), out, backend, n_boot, progress)
    except EchoAVCError as exc:
        fail(exc)
    c = rep["counts"]
    for f in rep["data"].get("failed_files", []):
        err.print(f"[yellow]failed (counted):[/yellow] {f['source']}: {f['reason']}", highlight=False, soft_wrap=True)

    from echoavc.evaluate.intervals import format_plain as fmt

    cov = (rep.get("coverage") or {}).get("exams")
    a, b = rep.get("exam_decided") or {}, rep.get("exam_undetermined_as_errors") or {}
    typer.echo(f"{rep['data']['label']}: {c['exams']} exams, coverage {fmt(cov)} "
               f"({c['exams_undetermined']} undetermined)")
    typer.echo("  decided exams:        " + ", ".join(f"{k} {fmt(a.get(k))}" for k in ("auroc", "recall", "specificity")))
    typer.echo("  undetermined = error: " + ", ".join(f"{k} {fmt(b.get(k))}" for k in ("auroc", "recall", "specificity")))
    g = rep.get("grade")
    if g and g.get("qwk"):
        typer.echo(f"  grade ({g['exams_graded']} decided exams): quadratic weighted kappa {fmt(g['qwk'])}")
    typer.echo(f"-> {rep['files']['markdown']}")


def _counts(pair: tuple[int, int]) -> str:
    return ",".join(map(str, pair))


def _pair(text: str, name: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise EchoAVCError(f"{name} takes CALCIFIED,NORMAL exam counts (e.g. 24,24), not {text!r}") from None
    return a, b


def threshold_odds_command(
    auroc: Annotated[list[float], typer.Option("--auroc", help="The model's exam AUROC (repeat for a table).")],
    validation: Annotated[str, typer.Option("--validation", help="CALCIFIED,NORMAL validation exams the "
                                            "threshold is chosen on.")] = _counts(planning.VALIDATION),
    test: Annotated[str, typer.Option("--test", help="CALCIFIED,NORMAL exams of each test set.")]
    = _counts(planning.TEST),
    rule: Annotated[str, typer.Option("--rule", help="recall (highest threshold with recall >= --min-recall, as "
                                      "echoavc train) | youden")] = _SCREENING.exam_threshold_rule,
    min_recall: Annotated[float, typer.Option("--min-recall", help="The rule's recall on validation (as "
                                              "ScreeningSettings.min_recall).")] = _SCREENING.min_recall,
    goal_recall: Annotated[float, typer.Option("--goal-recall", help="Recall a test set must reach.")]
    = planning.GOAL_RECALL,
    goal_specificity: Annotated[float, typer.Option("--goal-specificity", help="Specificity a test set must "
                                                    "reach.")] = planning.GOAL_SPECIFICITY,
    test_sets: Annotated[int, typer.Option("--test-sets", min=1, help="Test sets screened with one threshold.")] = 1,
    draws: Annotated[int, typer.Option("--draws", min=100, help="Simulated validation sets.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 0,
) -> None:
    """The chance that a threshold chosen on validation exams meets a recall and specificity goal on new exams
    (binormal model of a given AUROC; docs/evaluation.md). For sizing validation and test sets, and for judging
    whether a goal is reachable before training anything."""
    try:
        val, tst = _pair(validation, "--validation"), _pair(test, "--test")
        for a in auroc:
            typer.echo(planning.threshold_odds(a, val, tst, rule, min_recall, goal_recall, goal_specificity,
                                            test_sets, draws, seed).line())
    except EchoAVCError as exc:
        fail(exc)
