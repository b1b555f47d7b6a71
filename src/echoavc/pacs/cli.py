"""``echoavc pacs``: screen a study straight from a PACS, or turn a predict results folder into DICOM SR + SC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from echoavc.cliutil import err, fail
from echoavc.errors import EchoAVCError

pacs_app = typer.Typer(help="Results as DICOM (SR + secondary capture) and screening from a PACS.",
                       no_args_is_help=True)

DICOM_OUT_HELP = ("Folder for the DICOM results (SR + SC). They are IDENTIFIED (they name the patient and study, "
                  "or no PACS could file them): keep this folder apart from the de-identified --out folder.")


@pacs_app.command("screen")
def screen(
    source: Annotated[str, typer.Argument(help="orthanc://HOST:PORT (REST) or dicom://AE@HOST:PORT (C-FIND/C-MOVE).")],
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder (echoavc train).")],
    out: Annotated[Path, typer.Option("--out", help="De-identified results folder, as echoavc predict writes.")],
    dicom_out: Annotated[Path, typer.Option("--dicom-out", help=DICOM_OUT_HELP)],
    study: Annotated[Optional[list[str]], typer.Option("--study", help="Study Instance UID to screen (repeatable).")]
    = None,
    patient: Annotated[Optional[str], typer.Option("--patient", help="Screen this patient id's studies.")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Screen studies from this date on (YYYY-MM-DD); "
                                                 "with --patient, that patient's.")] = None,
    credentials: Annotated[Optional[Path], typer.Option(
        "--credentials", help="File holding user:password for Orthanc (else ECHOAVC_ORTHANC_USER/_PASSWORD).")]
    = None,
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title (calling AE; C-MOVE destination).")]
    = "ECHOAVC",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of our Storage SCP for C-MOVE "
                                      "(the PACS must list --ae-title with this host and port).")] = 11113,
    upload: Annotated[bool, typer.Option("--upload/--no-upload", help="Store the SR and SC back in the PACS.")]
    = True,
    backend: Annotated[str, typer.Option("--backend", help="auto, torch or onnx.")] = "auto",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Fetch studies from a PACS, screen them, write the SR and SC to --dicom-out and store them in the PACS."""
    from echoavc.pacs import find_studies, screen_studies

    try:
        uids = list(study or [])
        if patient or since:
            found = find_studies(source, patient=patient, since=since, credentials_file=credentials,
                                 local_ae=ae_title)
            if not found:
                raise EchoAVCError("no study matches " + " and ".join(
                    x for x in (patient and f"patient {patient}", since and f"since {since}") if x), source)
            uids += found
        if not uids:
            raise EchoAVCError("say which studies: --study UID, --patient ID and/or --since DATE")
        res = screen_studies(source, uids, model, out, dicom_out, backend=backend, upload_results=upload,
                             credentials_file=credentials, local_ae=ae_title, local_port=port, progress=progress)
    except EchoAVCError as exc:
        fail(exc)
    for e in res.report.exams:
        p = "" if e["probability"] is None else f" P={e['probability']:.3f}"
        typer.echo(f"{e['exam_id']}: {e['decision']}{p}")
    typer.echo(f"{len(res.studies)} studies, {res.fetched} instances screened ({res.skipped_own} echoavc results "
               f"left out); "
               f"{len(res.results)} SR + SC written to {dicom_out}; {len(res.uploaded)} stored in the PACS")
    for exam_id, reason in res.failures:
        err.print(f"{exam_id}: no DICOM results: {reason}", highlight=False)


@pacs_app.command("results")
def results(
    results_dir: Annotated[Path, typer.Argument(help="A folder echoavc predict wrote (results.json).")],
    model: Annotated[Path, typer.Option("--model", help="The bundle that screened it.")],
    dicom_out: Annotated[Path, typer.Option("--dicom-out", help=DICOM_OUT_HELP)],
) -> None:
    """Write the SR and SC of every screened DICOM exam in a predict results folder (inputs must still exist)."""
    from echoavc.bundle import load_bundle
    from echoavc.dicom.results import exam_results_to_dicom, read_predict_results

    failures: list[tuple[str, str]] = []
    try:
        written = exam_results_to_dicom(read_predict_results(results_dir), load_bundle(model), dicom_out,
                                        on_failure=lambda e, r: failures.append((e, r)))
    except EchoAVCError as exc:
        fail(exc)
    for exam_id, reason in failures:
        err.print(f"{exam_id}: no DICOM results: {reason}", highlight=False)
    typer.echo(f"{len(written)} exams: SR + SC written to {dicom_out}")
    if failures and not written:
        raise typer.Exit(1)


__all__ = ["pacs_app"]

