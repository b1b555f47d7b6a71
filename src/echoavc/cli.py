"""The ``echoavc`` command line: one sub-command per pipeline stage.

Options mirror the Python functions beneath them. Errors a user can cause are
printed as one line, ``<file>: <reason>``; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console
from rich.table import Table

from echoavc.cliutil import STATE, DataOpt, SplitOpt, err, fail
from echoavc.errors import EchoAVCError
from echoavc.settings import (
    EXAM_AGGREGATES, EXAM_THRESHOLD_RULES, FRAME_POLICIES, IngestSettings, ScreeningSettings, SynthSettings,
    ViewSettings,
)

#: Defaults of the options below: the settings dataclasses' own.
_INGEST, _SYNTH, _SCREENING = IngestSettings(), SynthSettings(), ScreeningSettings()

#: where ingest and predict run (echoavc.runner.ENGINES; docs/scaling.md)
EngineOpt = Annotated[Literal["local", "ray"], typer.Option("--engine", help="local (this machine) | ray (a Ray "
                                                            "cluster: pip install 'echoavc[ray]'; docs/scaling.md).")]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Ray: auto (the cluster started here with "
                                                   "`ray start`) or HEAD_HOST:PORT; default RAY_ADDRESS, else a "
                                                   "new local Ray instance.")]

app = typer.Typer(
    name="echoavc",
    help="Aortic valve calcification screening in echocardiograms (research use only).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    STATE["debug"] = debug


@app.command()
def ingest(
    src: Annotated[list[Path], typer.Argument(help="DICOM files, folders (recursive) and zip archives.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: frames/, manifest.csv, failures.csv.")],
    key: Annotated[Path, typer.Option("--key", help="Pseudonym key file, created on first use. Keep it apart "
                                      "from the output: the pseudonym map and the source report go beside it.")],
    every_nth: Annotated[int, typer.Option("--every", min=1, help="Keep every n-th frame.")] = _INGEST.every_nth,
    modality: Annotated[list[str], typer.Option("--modality", help="Modalities to keep ('all' keeps every one).")]
    = list(_INGEST.modalities),
    qc: Annotated[bool, typer.Option("--qc", help="Write a before/after picture per file to qc/.")] = _INGEST.qc,
    write_dicom: Annotated[bool, typer.Option("--write-dicom", help="Also write de-identified, masked DICOM.")]
    = _INGEST.write_dicom,
    size: Annotated[int, typer.Option("--size", min=32, help="Side of the standard image.")] = _INGEST.size,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Files decoded in parallel (with --engine ray: "
                                         "Ray workers, 0: one per CPU of the cluster).")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    """De-identify DICOM, find the cone, write standard 640x640 frames and a manifest."""
    from echoavc.ingest import ingest as run_ingest

    modalities = () if any(m.lower() == "all" for m in modality) else tuple(m.upper() for m in modality)
    settings = replace(_INGEST, every_nth=every_nth, modalities=modalities, qc=qc,
                       write_dicom=write_dicom, size=size)
    try:
        report = run_ingest(src, out, key, settings, workers=workers, progress=progress, engine=engine,
                            address=address)
    except EchoAVCError as exc:
        fail(exc)
    for name, reason in report.failures:
        err.print(f"[red]failed:[/red] {name}: {reason}", highlight=False, soft_wrap=True)
    for name, warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {name}: {warning}", highlight=False, soft_wrap=True)
    console.print(
        f"{report.done} files ingested ({report.frames} frames), {report.resumed} already done, "
        f"{report.skipped} skipped, {report.failed} failed -> {report.manifest}",
        highlight=False,
    )
    if report.failed:
        raise typer.Exit(1)


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Versions, DICOM decoders, GPU, threads and offline settings."""
    from echoavc.doctor import report

    info = report()
    if as_json:
        console.print_json(json.dumps(info))
        return
    table = Table(title="echoavc doctor", show_header=False)
    for k in ("echoavc", "python", "platform", "accelerator", "cache_dir"):
        table.add_row(k, str(info[k]))
    table.add_row("threads", ", ".join(f"{k} {v}" for k, v in info["threads"].items()))
    table.add_row("offline", ", ".join(f"{k}={v or '-'}" for k, v in info["offline"].items()))
    for name, version in info["packages"].items():
        table.add_row(f"  {name}", version)
    for ts, plugins in info["dicom_decoders"].items():
        table.add_row(f"  decode {ts}", plugins)
    console.print(table)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder: dicom/, frames.csv, labels.csv, maxqda_valves.csv.")],
    patients: Annotated[int, typer.Option("--patients", min=1, help="Number of patients.")] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives identical files.")] = 0,
    prevalence: Annotated[float, typer.Option("--prevalence", min=0.0, max=1.0,
                                              help="Share of calcified patients (paper: 0.36).")]
    = _SYNTH.prevalence,
    frames_per_exam: Annotated[int, typer.Option("--frames-per-exam", min=1)] = _SYNTH.frames_per_exam,
    exams_per_patient: Annotated[int, typer.Option("--exams-per-patient", min=1,
                                                   help="Follow-up exams; the grade may progress.")]
    = _SYNTH.exams_per_patient,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes (0: one per core).")] = _SYNTH.workers,
    gallery: Annotated[bool, typer.Option("--gallery", help="Also write gallery.png: a contact sheet "
                                          "beside real reference clips.")] = False,
    anatomy: Annotated[str, typer.Option("--anatomy", help="classic | realistic (thick speckled tissue, zoomed "
                                         "root views, overlays in the field; docs/synth.md).")] = _SYNTH.anatomy,
    beats_per_clip: Annotated[float, typer.Option("--beats-per-clip", help="Cardiac cycles each clip spans "
                                                  "(classic anatomy).")] = _SYNTH.beats_per_clip,
    phase_variety: Annotated[bool, typer.Option("--phase-variety/--no-phase-variety", help="Vary the cardiac "
                                                "timing each clip records: header, ECG on screen (docs/phase.md).")]
    = _SYNTH.phase_variety,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Write a synthetic echo cohort (DICOM + ground truth) for testing and demos."""
    from echoavc.synth.cohort import make_cohort
    from echoavc.synth.gallery import make_gallery

    try:
        paths = make_cohort(out, patients, seed, prevalence=prevalence, frames_per_exam=frames_per_exam,
                            exams_per_patient=exams_per_patient, workers=workers, progress=progress,
                            anatomy=anatomy, beats_per_clip=beats_per_clip, phase_variety=phase_variety)
        sheet = make_gallery(out) if gallery else None
    except EchoAVCError as exc:
        fail(exc)
    typer.echo(f"{patients} patients -> {paths.frames}, {paths.labels}, {paths.maxqda}"
               + (f", {sheet}" if sheet else ""))


@app.command()
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Model bundle folder to write.")],
    split: SplitOpt = None,
    preset: Annotated[str, typer.Option("--preset", help="cpu | paper | smoke (both stages).")] = "cpu",
    work: Annotated[Optional[Path], typer.Option("--work", help="Training runs (default OUT.work); a re-run "
                                                 "continues from the stages finished there.")] = None,
    exam_rule: Annotated[Literal[EXAM_THRESHOLD_RULES], typer.Option("--exam-rule", help="Exam threshold on "
                                                                     "validation exams.")]
    = _SCREENING.exam_threshold_rule,
    min_recall: Annotated[float, typer.Option("--min-recall", min=0.0, max=1.0)] = _SCREENING.min_recall,
    aggregate: Annotated[Literal[EXAM_AGGREGATES], typer.Option("--aggregate", help="Exam probability from its "
                                                                "frames.")] = _SCREENING.exam_aggregate,
    frames: Annotated[Literal[FRAME_POLICIES], typer.Option("--frames", help="Frames the exam threshold is chosen "
                                                            "on and predict screens (stored in the bundle; "
                                                            "docs/phase.md).")] = _SCREENING.frames,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Also store ONNX exports (predict uses "
                                       "onnxruntime then).")] = True,
    detector_weights: Annotated[Optional[Path], typer.Option("--detector-weights", help="Use this detector "
                                                             "checkpoint (echoavc detector train) instead of "
                                                             "training one.")] = None,
    classifier_model: Annotated[Optional[Path], typer.Option("--classifier-model", help="Use this classifier "
                                                             "folder (echoavc classifier train) instead of "
                                                             "training one.")] = None,
    views: Annotated[bool, typer.Option("--views/--no-views", help="Also train the view model (echoavc views "
                                        "train) and store it: predict then screens psax_av clips only.")] = False,
    view_model: Annotated[Optional[Path], typer.Option("--view-model", help="Store this view model folder "
                                                       "(echoavc views train) instead of training one.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Train the detector and the classifier on the patient split and write one model bundle."""
    from echoavc.train import train_bundle

    try:
        screening = replace(_SCREENING, exam_threshold_rule=exam_rule, min_recall=min_recall,
                            exam_aggregate=aggregate, frames=frames)
        train_bundle(data, out, preset, split, work, screening=screening, onnx=onnx, progress=progress,
                     log=lambda m: console.print(m, highlight=False, soft_wrap=True),
                     detector_weights=detector_weights, classifier_model=classifier_model,
                     views=ViewSettings() if views else None, view_model=view_model)
    except (EchoAVCError, ValueError) as exc:
        fail(exc)


@app.command()
def predict(
    # str, not Path: Path("orthanc://h:1") collapses the double slash
    src: Annotated[list[str], typer.Argument(help="DICOM files, folders (recursive), zip archives, PNG/JPEG; or "
                                             "one orthanc://HOST:PORT or dicom://AE@HOST:PORT (docs/pacs.md).")],
    model: Annotated[Path, typer.Option("--model", help="Model bundle (echoavc train).")],
    out: Annotated[Path, typer.Option("--out", help="Results folder: exams.csv, frames.csv, results.json, "
                                      "report.html, overlays/.")],
    backend: Annotated[str, typer.Option("--backend", help="auto (onnxruntime when the bundle has ONNX) | onnx "
                                         "| torch | int8 (the bundle's int8 models, when it has them).")] = "auto",
    workers: Annotated[int, typer.Option("--workers", min=0, help="Files screened in parallel (processes; with "
                                         "--engine ray: Ray workers, 0: one per CPU of the cluster).")] = 1,
    threads: Annotated[int, typer.Option("--threads", min=0, help="Threads in all (0: every core).")] = 0,
    overlays: Annotated[str, typer.Option("--overlays", help="driving (one per clip, Grad-CAM on each exam's "
                                          "driving frame) | all | none.")] = "driving",
    detect_frames: Annotated[Optional[int], typer.Option("--detect-frames", min=0, help="Locate the valve on "
                                                         "this many frames per clip first, then between frames whose "
                                                         "boxes drifted apart (0: every frame).")] = None,
    track_iou: Annotated[Optional[float], typer.Option("--track-iou", min=0.0, max=1.0, help="With --detect-frames: "
                                                       "located frames whose boxes overlap less than this have the "
                                                       "frame between them located too.")] = None,
    aggregate: Annotated[Optional[Literal[EXAM_AGGREGATES]], typer.Option("--aggregate", help="Override the bundle's exam aggregate "
                                                     "(the exam threshold was chosen for the bundle's).")] = None,
    valve_conf: Annotated[Optional[float], typer.Option("--valve-conf", min=0.0, max=1.0, help="Override: below "
                                                        "this valve score a frame is 'no valve'.")] = None,
    decide_conf: Annotated[Optional[float], typer.Option("--decide-conf", min=0.0, max=1.0, help="Override: below "
                                                         "this valve score a frame is 'low confidence'.")] = None,
    explain: Annotated[Optional[bool], typer.Option("--explain/--no-explain", help="Grad-CAM heat maps.")] = None,
    frames: Annotated[Optional[Literal[FRAME_POLICIES]], typer.Option("--frames", help="Override the bundle's frame "
                      "policy: closed (aortic valve closed, as the paper) | all | end-diastole (docs/phase.md; the "
                      "exam threshold was chosen with the bundle's).")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html.")] = True,
    dicom_out: Annotated[Optional[Path], typer.Option("--dicom-out", help="Also write each exam's DICOM SR and "
                         "secondary capture here. IDENTIFIED objects: keep this folder apart from --out.")] = None,
    study: Annotated[Optional[list[str]], typer.Option("--study", help="PACS source: Study Instance UID "
                     "(repeatable).")] = None,
    patient: Annotated[Optional[str], typer.Option("--patient", help="PACS source: this patient id's studies.")]
    = None,
    since: Annotated[Optional[str], typer.Option("--since", help="PACS source: studies from this date on "
                     "(YYYY-MM-DD).")] = None,
    credentials: Annotated[Optional[Path], typer.Option("--credentials", help="PACS source: file with "
                           "user:password for Orthanc (else ECHOAVC_ORTHANC_USER/_PASSWORD).")] = None,
    ae_title: Annotated[str, typer.Option("--ae-title", help="PACS source: our AE title.")] = "ECHOAVC",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="PACS source: port of our Storage SCP "
                    "for C-MOVE (the PACS must list --ae-title with it).")] = 11113,
    key: Annotated[Optional[Path], typer.Option("--key", help="The ingest key: exam ids become the keyed study "
                   "pseudonyms ingest uses; without it, an unkeyed hash.")] = None,
    review_frames: Annotated[bool, typer.Option("--review-frames", help="Keep each clip's standard frames and "
                             "transform in OUT/review/ for `echoavc review serve` (docs/review.md).")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Screen exams: valve box, calibrated calcification probability per frame, a decision per exam."""
    if workers > 1 and engine == "local":
        from echoavc.runner import PREDICT_PRELOAD, worker_context

        worker_context(PREDICT_PRELOAD, start=True)  # the workers' imports, while this process does its own
    from echoavc.bundle import load_bundle, with_screening
    from echoavc.pacs import screen_inputs

    try:
        b = load_bundle(model)
        s = with_screening(b, detect_frames=detect_frames, track_iou=track_iou, exam_aggregate=aggregate,
                           explain=explain, valve_conf=valve_conf, decide_conf=decide_conf, frames=frames)
        rep = screen_inputs(src, model, out, dicom_out=dicom_out, study=study, patient=patient, since=since,
                            credentials_file=credentials, local_ae=ae_title, local_port=port,
                            on_dicom_failure=lambda e, r: err.print(f"[red]no DICOM results:[/red] {e}: {r}",
                                                                    highlight=False, soft_wrap=True),
                            backend=backend, settings=s, workers=workers, threads=threads, overlays=overlays,
                            report=report, progress=progress, key=key, review_frames=review_frames,
                            engine=engine, address=address)
    except EchoAVCError as exc:
        fail(exc)
    for f in rep.failures:
        err.print(f"[red]failed:[/red] {f['source']}: {f['reason']}", highlight=False, soft_wrap=True)
    calls = {}
    for e in rep.exams:
        calls[e["decision"]] = calls.get(e["decision"], 0) + 1
    console.print(f"{len(rep.exams)} exams ({', '.join(f'{v} {k}' for k, v in sorted(calls.items())) or 'none'}), "
                  f"{len(rep.frames)} frames, {rep.resumed} inputs already done, {len(rep.failures)} failed -> "
                  f"{rep.out / 'exams.csv'}" + (f", {rep.report_html}" if report else ""), highlight=False)
    if rep.failures:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Demo folder (everything goes here).")],
    seed: Annotated[int, typer.Option("--seed", help="Evaluation seed of the held-out patients (900000-999999; "
                                      "tuning seeds are refused, docs/evaluation.md).")] = 900_001,
    patients: Annotated[int, typer.Option("--patients", min=8, help="Training patients in all: the detector trains "
                                          "on the first 48, the classifier on all.")] = 260,
    heldout: Annotated[int, typer.Option("--heldout", min=2, help="Held-out patients evaluated at the end.")] = 48,
    train_seed: Annotated[int, typer.Option("--train-seed", help="Seed of the training cohorts.")] = 2026,
    preset: Annotated[str, typer.Option("--preset", help="cpu | smoke | paper")] = "cpu",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for synthesis, ingest and "
                                         "screening.")] = 2,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Synthesise, ingest, train, evaluate held-out exams of an evaluation seed, write the HTML report."""
    from echoavc.demo import describe, run_demo

    try:
        res = run_demo(out, patients, heldout, train_seed, preset, workers, progress,
                       log=lambda m: console.print(m, highlight=False, soft_wrap=True), seed=seed)
    except EchoAVCError as exc:
        fail(exc)
    console.print(describe(res.evaluation), highlight=False, soft_wrap=True)
    console.print(f"time: {res.seconds}", highlight=False)
    console.print(f"report: {res.report_html}", highlight=False, soft_wrap=True)


from echoavc.dataset.cli import augment_app, dataset_app  # noqa: E402  (sub-apps live beside their code)

app.add_typer(dataset_app, name="dataset")
app.add_typer(augment_app, name="augment")

from echoavc.experiments.cli import experiments_app  # noqa: E402

app.add_typer(experiments_app, name="experiments")

from echoavc.detector.cli import detector_app  # noqa: E402

app.add_typer(detector_app, name="detector")

from echoavc.classifier.cli import classifier_app  # noqa: E402

app.add_typer(classifier_app, name="classifier")

from echoavc.pacs.cli import pacs_app  # noqa: E402

app.add_typer(pacs_app, name="pacs")

from echoavc.evaluate.cli import evaluate_command, threshold_odds_command  # noqa: E402

app.command("evaluate")(evaluate_command)
app.command("threshold-odds")(threshold_odds_command)

from echoavc.listen.cli import listen as listen_command  # noqa: E402

app.command("listen")(listen_command)

from echoavc.weights import weights_app  # noqa: E402

app.add_typer(weights_app, name="weights")

from echoavc.review.cli import review_app  # noqa: E402

app.add_typer(review_app, name="review")

from echoavc.views.cli import views_app  # noqa: E402

app.add_typer(views_app, name="views")


def main() -> None:
    try:
        app()
    except EchoAVCError as exc:  # raised outside a command's own handler
        from rich.markup import escape  # a reason may hold brackets: print them, not markup

        err.print(f"error: {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
