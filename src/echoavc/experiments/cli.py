"""``echoavc experiments ...``: one command per table of the paper."""

from __future__ import annotations

import typer

from echoavc.cliutil import DataOpt, SplitOpt, split_file
from echoavc.settings import ClassifierSettings

#: Defaults of the classifier tables' options: the settings dataclass's own.
_CLASSIFIER = ClassifierSettings()

experiments_app = typer.Typer(name="experiments", help="Reproduce the paper's Tables 1-4 (reported numbers are "
                              "references from private data and an image-level split, not targets).",
                              no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


# ---------------------------------------------------------------- Tables 2-4 (classifier; docs/classifier.md)

from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402


def _table_command(table: str, what: str):
    def command(
        data: DataOpt,
        preset: Annotated[str, typer.Option("--preset", help="smoke | cpu | paper")] = "cpu",
        split: SplitOpt = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="Folder for TABLE.md, TABLE.csv, TABLE_details.json "
                                                    "(default runs/experiments).")] = None,
        rows: Annotated[Optional[str], typer.Option("--rows", help="Experiment numbers, e.g. 1,14,17 (default all).")]
        = None,
        protocol: Annotated[str, typer.Option("--protocol", help="both | paper | patient")] = "both",
        n_boot: Annotated[int, typer.Option("--n-boot", min=100)] = 2000,
        seed: Annotated[int, typer.Option("--seed")] = _CLASSIFIER.seed,
        threads: Annotated[int, typer.Option("--threads", min=0, help="0: every core.")] = _CLASSIFIER.threads,
    ) -> None:
        from rich.console import Console

        from echoavc.errors import EchoAVCError
        from echoavc.experiments.tables234 import PROTOCOLS, run_table

        err = Console(stderr=True)
        protocols = PROTOCOLS if protocol == "both" else (protocol,)
        try:
            picked = [int(v) for v in rows.split(",")] if rows else None
            res = run_table(table, data, split if "patient" not in protocols
                            else split_file(data, split), preset=preset, out=out or Path("runs/experiments"),
                            rows=picked, protocols=protocols, n_boot=n_boot, seed=seed, threads=threads,
                            log=lambda m: err.print(m, highlight=False))
        except (EchoAVCError, ValueError) as exc:
            from echoavc.cliutil import fail

            fail(exc)
        typer.echo(res.markdown)
        typer.echo(f"-> {res.files['markdown']}, {res.files['csv']}")

    command.__doc__ = (f"{what}, under the paper's protocol (augment and balance, then 80/20 by image: LEAKY) and "
                       "the leakage-free one (split by patient first), beside the paper's reported numbers.")
    return command


experiments_app.command("table2")(_table_command("table2", "Table 2: the binarisation baseline (190-220) and a "
                                                            "fitted variant"))
experiments_app.command("table3")(_table_command("table3", "Table 3: four dataset variants x EfficientNetB0 / "
                                                            "MobileNetV3Small"))
experiments_app.command("table4")(_table_command("table4", "Table 4: six backbones x pooling none / max / avg"))


# ---------------------------------------------------------------- Table 1 (detector; docs/detector.md)


@experiments_app.command("table1")
def table1_cmd(
    data: DataOpt,
    folds: Annotated[int, typer.Option("--folds", min=0, help="Patient folds of the split file (0 or 1: its main "
                                       "train/val/test parts).")] = 5,
    preset: Annotated[str, typer.Option("--preset", help="smoke | cpu | paper")] = "cpu",
    split: SplitOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for table1.md, table1.csv, table1_details.json "
                                                "and the runs (default runs/experiments/table1).")] = None,
    experiments: Annotated[Optional[str], typer.Option("--experiments", help="Experiment numbers, e.g. 1,4,6 "
                                                       "(default all seven).")] = None,
    time_cap: Annotated[Optional[float], typer.Option("--time-cap", help="Minutes for all runs together; each run "
                                                      "gets an equal share of what is left.")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Start every run from this checkpoint.")]
    = None,
    eval_part: Annotated[str, typer.Option("--eval-part", help="test (fixed test patients) | val (held-out fold)")]
    = "test",
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Override the preset's epochs.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, 0, ... (default: GPU when present).")]
    = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Data loader processes.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=100)] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Table 1: the detector with the seven offline augmentation sets, patient k-fold, beside the paper's numbers."""
    from rich.console import Console

    from echoavc.errors import EchoAVCError
    from echoavc.experiments.table1 import EXPERIMENTS, run_table1
    from echoavc.settings import detector_preset

    err = Console(stderr=True)
    try:
        picked = [int(v) for v in experiments.split(",")] if experiments else list(EXPERIMENTS)
        settings = detector_preset(preset, epochs=epochs, device=device, workers=workers)
        res = run_table1(data, split_file(data, split), out or Path("runs/experiments/table1"), folds, preset,
                         picked, time_cap, weights, eval_part, n_boot, seed, settings,
                         log=lambda m: err.print(m, highlight=False))
    except (EchoAVCError, ValueError) as exc:
        from echoavc.cliutil import fail

        fail(exc)
    typer.echo(res.markdown)
    typer.echo(f"-> {res.files['markdown']}, {res.files['csv']}")
