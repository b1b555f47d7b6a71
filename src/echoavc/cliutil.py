"""What every ``echoavc`` sub-command shares: the ``--debug`` switch and one-line errors."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

#: Set by the top-level ``--debug`` option.
STATE = {"debug": False}
err = Console(stderr=True)


def fail(exc: BaseException) -> NoReturn:
    """Print ``<file>: <reason>`` in one line and exit 2; with ``--debug``, raise for the traceback."""
    if STATE["debug"]:
        raise exc
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
