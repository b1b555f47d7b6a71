"""What every ``echoavc`` sub-command shares: the ``--debug`` switch and one-line errors."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator, NoReturn

import typer
from rich.console import Console

from echoavc.errors import EchoAVCWarning

#: Set by the top-level ``--debug`` option.
STATE = {"debug": False}
err = Console(stderr=True)


def fail(exc: BaseException) -> NoReturn:
    """Print ``<file>: <reason>`` in one line and exit 2; with ``--debug``, raise for the traceback."""
    if STATE["debug"]:
        raise exc
    from rich.markup import escape  # a reason may hold brackets (pip install 'echoavc[ray]'): not markup

    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_warnings() -> Iterator[None]:
    """Run a command's work; when it succeeds, show its ``EchoAVCWarning`` warnings as one line each. The libraries'
    own warnings (torch, timm, Ultralytics) stay hidden: chosen by category, not by the message's text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, EchoAVCWarning):
            err.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- options shared by the sub-commands
# One spelling everywhere a dataset folder (the output of ``echoavc dataset build``: table.csv, usually
# split.json) or a split file is passed. ``--table`` was the old name in some sub-commands; it still works.

from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

DATA_HELP = "Dataset folder (echoavc dataset build: table.csv, usually split.json); --table is the old name."
SPLIT_HELP = "Patient split file (echoavc dataset split); default DATA/split.json."

#: ``--data DATASET`` (``--table`` still accepted): the dataset table folder.
DataOpt = Annotated[Path, typer.Option("--data", "--table", metavar="DATASET", help=DATA_HELP, show_default=False)]
#: ``--split SPLIT``: the patient split file; ``None`` means ``DATA/split.json`` (see :func:`split_file`).
SplitOpt = Annotated[Optional[Path], typer.Option("--split", metavar="SPLIT", help=SPLIT_HELP, show_default=False)]


def split_file(data: Path, split: Optional[Path]) -> Path:
    """The ``--split`` file: as given, else ``DATA/split.json`` (DATA a dataset folder or its table.csv)."""
    if split is not None:
        return Path(split)
    data = Path(data)
    return (data.parent if data.suffix == ".csv" else data) / "split.json"
