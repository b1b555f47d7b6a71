"""``echoavc review serve`` and ``echoavc review export`` (docs/review.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from echoavc.cliutil import fail
from echoavc.errors import EchoAVCError

review_app = typer.Typer(name="review", help="Review screening results in the browser; export the answers as "
                         "training data (docs/review.md).", no_args_is_help=True, pretty_exceptions_enable=False,
                         add_completion=False)
out = Console(soft_wrap=True)


@review_app.command("serve")
def serve_cmd(
    results: Annotated[Path, typer.Argument(help="A results folder (echoavc predict --review-frames).")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but the loopback needs "
                                      "--token.")] = "127.0.0.1",
    reviewer: Annotated[str, typer.Option("--reviewer", help="Your name, recorded with every answer.")] = "reviewer",
    blinded: Annotated[bool, typer.Option("--blinded", help="Hide the model's answer for an exam until you have "
                                          "recorded yours.")] = False,
    token: Annotated[Optional[str], typer.Option("--token", envvar="ECHOAVC_REVIEW_TOKEN",
                                                 help="Required on every request (open the printed address "
                                                 "once); needed off the loopback.")] = None,
) -> None:
    """Serve the review app over RESULTS until interrupted (Ctrl-C)."""
    try:
        from echoavc.review.app import make_app

        app = make_app(results, reviewer=reviewer, blinded=blinded, token=token, host=host)
    except EchoAVCError as exc:
        fail(exc)
    except ImportError as exc:  # a broken install: fastapi, uvicorn and jinja2 are dependencies
        fail(EchoAVCError(f"the review app needs {exc.name} (pip install echoavc)"))
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    out.print(f"Research use only. Reviewing {results} as {reviewer}{' (blinded)' if blinded else ''}: "
              f"http://{shown}:{port}/" + (f"?token={token}" if token else ""), highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@review_app.command("export")
def export_cmd(
    results: Annotated[Path, typer.Argument(help="A reviewed results folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder: labels.csv, boxes.json (COCO), boxes.csv, "
                                          "views.csv, export.json.")],
    space: Annotated[Literal["original", "standard"], typer.Option("--space", help="Box coordinates: the "
                     "original DICOM frame or the standard frame.")] = "original",
) -> None:
    """Export every reviewed exam's label and boxes (confirmed ones too) for `echoavc dataset build`."""
    from echoavc.review.export import export_review

    try:
        c = export_review(results, out_dir, space)
    except EchoAVCError as exc:
        fail(exc)
    out.print(f"{c['exams']} reviewed exams ({c['confirmed']} confirmed, {c['corrected']} corrected), "
              f"{c['boxes']} boxes ({c['boxes_by_reviewer']} drawn by the reviewer), {c['wrong_view_frames']} "
              f"wrong-view frames -> {out_dir}", highlight=False)
