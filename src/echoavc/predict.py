"""``echoavc predict``: screen exams with a model bundle.

DICOM files, folders, zip archives or exported images (PNG/JPEG) in; per frame and per exam results out::

    decode -> cone -> standard frame (in memory, exactly as ``ingest`` makes it) -> valve box (detector)
           -> valve crop -> calibrated P(calcified) (classifier) -> frame decision -> exam decision

Each frame gets a status: ``decided``, ``no_cone`` (no ultrasound field found), ``no_valve`` (not an
aortic-valve short-axis view, or no valve found), or ``low_confidence`` (a valve box, but a weak one: shown,
not used for the exam). An exam (a DICOM study; for images, the folder holding them) is called on the
aggregate of its decided frames against the exam threshold chosen on validation exams.

This module is the batch (:func:`predict`: files in; CSV, JSON, overlays and the HTML report out), on the
batch runner (:mod:`echoavc.runner`). The numeric core (:class:`~echoavc.screening.core.Screener`: numpy frames
in, frame results out), one input screened, and the exam decisions are :mod:`echoavc.screening`. A batch never
stops on a bad file, writes every file atomically, and a re-run skips inputs already done with the same
bundle and settings.

``Screener``, ``FrameResult``, ``ClipResult``, ``exam_results``, ``exam_id_of``, ``screen_input``,
``STATUS_TEXT`` and ``HEAT_MAP_FILE`` are importable from here too (older callers, benchmarks/bench_predict.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from echoavc.bundle import Bundle, load_bundle
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text, csv_text
from echoavc.runner import (STATE_DIR, Source, check_engine, failure_reason, find_sources, open_state, run_batch,
                            PREDICT_PRELOAD, worker_context)
from echoavc.screening import (HEAT_MAP_FILE, STATUS_TEXT, ClipResult, FrameResult, Screener, exam_id_of,
                               exam_results, explain_exams, screen_input)
from echoavc.settings import ScreeningSettings, from_dict

FRAME_COLUMNS = ["exam_id", "source", "frame_index", "status", "status_text", "valve_score", "valve_x1", "valve_y1",
                 "valve_x2", "valve_y2", "probability", "decision", "overlay", "phase", "phase_source", "end_diastole"]
EXAM_COLUMNS = ["exam_id", "decision", "probability", "threshold", "n_clips", "n_clips_decided", "n_frames",
                "n_decided", "spread_low", "spread_high", "spread_of", "clips_agreeing", "frames_agreeing",
                "driving_source", "driving_frame", "reason", "sources", "overlay"]

# ---------------------------------------------------------------- the batch


@dataclass
class PredictReport:
    out: Path
    exams: list[dict]
    frames: list[dict]
    failures: list[dict]
    done: int = 0
    resumed: int = 0
    seconds: float = 0.0

    @property
    def report_html(self) -> Path:
        return self.out / "report.html"


_WORKER: dict = {}


def _worker_init(bundle_dir: str, backend: str, settings: dict, threads: int, secret: bytes | None = None) -> None:
    # the key's secret reaches spawned workers through the pipe that starts them, never through a file
    bundle = load_bundle(bundle_dir)
    _WORKER["screener"] = Screener(bundle, backend, from_dict(ScreeningSettings, settings), threads, secret)


def _ray_worker_init(bundle_dir: str, backend: str, settings: dict, threads: int, key_file: str | None,
                     key_marker: str | None) -> None:
    # on Ray the secret never travels (Ray keeps actor arguments): the worker reads the key file the driver made
    from echoavc.runner_ray import worker_secret

    _worker_init(bundle_dir, backend, settings, threads, worker_secret(key_file, key_marker))


def _worker_run(path: str, member: str | None, out_dir: str, overlays: str,
                review_frames: bool = False) -> tuple[str, dict | str]:
    return _run_one(_WORKER["screener"], Source(Path(path), member), Path(out_dir), overlays, review_frames)


def _run_one(screener: Screener, src, out_dir: Path, overlays: str,
             review_frames: bool = False) -> tuple[str, dict | str]:
    """("ok", clip record) or ("failed", reason); never raises for bad input."""
    from echoavc.dicom.read import sha256_bytes

    try:
        data = src.read()
        sha = sha256_bytes(data)
        return "ok", screen_input(screener, data, src.name, sha, out_dir, overlays, review_frames).to_dict()
    except Exception as exc:  # bad input, or a decoder bug: one failure row, the batch goes on
        return "failed", failure_reason(exc)


def open_key(key: str | Path | None, out: str | Path) -> bytes | None:
    """The ingest key's secret (the key file is created on first use, as ``echoavc ingest`` does), or None.

    Refused inside the results folder ``out``: the key re-identifies every exam id there."""
    if key is None:
        return None
    from echoavc.dicom.deid import PseudonymKey, check_key_outside

    check_key_outside(key, out, "results folder")
    return PseudonymKey(key).secret


def _fingerprint(bundle: Bundle, settings: ScreeningSettings, backend: str, overlays: str,
                 secret: bytes | None = None, review_frames: bool = False) -> str:
    doc = {"bundle": bundle.meta.get("files"), "settings": asdict(settings), "backend": backend,
           "overlays": overlays}
    if review_frames:  # only when asked, so earlier results still resume
        doc["review_frames"] = True
    if secret is not None:
        from echoavc.dicom.deid import pseudonym

        # another key gives other exam ids: a marker of the key (never the key itself) makes that a re-screen
        doc["key"] = pseudonym(secret, "check", "echoavc")
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def predict(inputs: Sequence[str | Path], model: str | Path, out: str | Path, *, backend: str = "auto",
            settings: ScreeningSettings | None = None, workers: int = 1, threads: int = 0,
            overlays: str = "driving", report: bool = True, progress: bool = True,
            on_failure: Callable[[str, str], None] | None = None, key: str | Path | None = None,
            review_frames: bool = False, engine: str = "local", address: str | None = None) -> PredictReport:
    """Screen every input (files, folders, zips) with the bundle ``model`` into ``out``.

    Writes ``frames.csv``, ``exams.csv``, ``results.json``, ``failures.csv``, overlay PNGs and
    ``report.html``. Inputs already screened with the same bundle, settings and key are not redone.
    ``key``: the ingest key file; exam ids become the keyed study pseudonyms ``echoavc ingest`` gives the
    same studies (without it, an unkeyed hash of the Study Instance UID). ``review_frames``: also keep each
    clip's standard frames and transform under ``out/review/`` for ``echoavc review`` (docs/review.md).
    ``engine``: ``local`` (this process, or ``workers`` processes) or ``ray`` (``workers`` Ray actors, 0: one
    per CPU of the cluster at ``address``; inputs, ``out`` and the key on a path every node shares).
    """
    if overlays not in ("driving", "all", "none"):
        raise EchoAVCError(f"overlays must be driving, all or none, not {overlays!r}")
    check_engine(engine)
    t0 = time.perf_counter()
    bundle = load_bundle(model)
    s = settings or bundle.screening
    if s.exam_aggregate not in ("mean", "median", "max"):
        raise EchoAVCError(f"exam aggregate must be mean, median or max, not {s.exam_aggregate!r}")
    backend = bundle.backend(backend)
    out = Path(out)
    secret = open_key(key, out)  # made here, before any work is spread: workers never create it
    key_file = None if key is None else str(Path(key).resolve())
    out.mkdir(parents=True, exist_ok=True)
    # stale temporaries only where an earlier screening left them: OUT may be a folder of other things
    store = open_state(out, clean=(out / STATE_DIR).is_dir())
    fp = _fingerprint(bundle, s, backend, overlays, secret, review_frames)
    if review_frames:
        from echoavc.review.frames import write_review_meta

        write_review_meta(out, bundle.preprocessing)
    sources, problems = find_sources(inputs)
    failures = [{"source": name, "reason": reason} for name, reason in problems]
    clips: list[ClipResult] = []
    todo = []
    resumed = 0
    for src in sources:
        # keyed by the input's name: a renamed or replaced file is screened again
        key = hashlib.sha256(src.name.encode()).hexdigest()[:24]
        rec = _done(store.load(key), fp)
        if rec is not None:
            resumed += 1
            if rec["status"] == "ok":
                clips.append(ClipResult.from_dict(rec["clip"]))
            else:
                failures.append({"source": src.name, "reason": rec["reason"]})
        else:
            todo.append((src, key))

    def finish(item: tuple, result: tuple[str, dict | str]) -> None:
        (src, key), (status, payload) = item, result
        if status == "ok":
            clips.append(ClipResult.from_dict(payload))
            store.save(key, {"fingerprint": fp, "status": "ok", "clip": payload})
        else:
            failures.append({"source": src.name, "reason": payload})
            if on_failure:
                on_failure(src.name, payload)
            # failures are retried on a re-run: the file may have been fixed

    screener = None

    def serial(item: tuple) -> tuple[str, dict | str]:
        nonlocal screener
        if screener is None:
            screener = Screener(bundle, backend, s, threads, secret)
        return _run_one(screener, item[0], out, overlays, review_frames)

    per = max(1, (threads or os.cpu_count() or 1) // max(1, workers))
    init, initargs = _worker_init, (str(bundle.folder), backend, asdict(s), per, secret)
    if engine == "ray":
        from echoavc.runner_ray import key_marker

        # each actor reserves the threads it uses: --threads shared among the workers, else one each
        per = max(1, threads // workers) if threads and workers > 0 else 1
        init, initargs = _ray_worker_init, (str(bundle.folder.resolve()), backend, asdict(s), per, key_file,
                                            None if secret is None else key_marker(secret))
    # never a fork of this process: a forked child of a process whose torch or onnxruntime thread pools already
    # ran can deadlock on a lock held at fork time (runner.worker_context)
    run_batch(todo, finish, serial=serial, workers=workers, label="screening", progress=progress,
              parallel=lambda t: (_worker_run, str(t[0].path), t[0].member, str(out), overlays, review_frames),
              mp_context=worker_context(PREDICT_PRELOAD), initializer=init, initargs=initargs,
              engine=engine, address=address, failed=lambda t, reason: ("failed", reason), cpus_per_worker=per,
              cost=lambda t: t[0].size())

    clips.sort(key=lambda c: c.source)
    exams = exam_results(clips, bundle.exam_threshold, s.exam_aggregate, bundle.grade_pooling)
    if overlays != "none" and s.explain:
        hm_key = Path(HEAT_MAP_FILE).stem
        hm = _done(store.load(hm_key), fp) or {"fingerprint": fp, "status": "ok", "done": {}, "seconds": 0.0}
        t_hm = time.perf_counter()

        def saved() -> None:
            nonlocal t_hm
            now = time.perf_counter()
            hm["seconds"] = round(hm.get("seconds", 0.0) + now - t_hm, 4)
            t_hm = now
            store.save(hm_key, hm)

        explain_exams(exams, clips, {src.name: src for src in sources}, out,
                      lambda: screener.classifier if screener is not None else bundle.classifier(backend),
                      bundle.ingest_settings(), hm["done"], saved, progress)
        saved()  # the step's record, also when every heat map was drawn while screening
    frames = [f.to_dict() for c in clips for f in c.frames]
    failures.sort(key=lambda f: f["source"])
    # the report's thumbnails on the CPUs the batch had (its workers are done by then)
    _write_outputs(out, bundle, exams, frames, failures, s, backend, report, clip_rows(clips),
                   report_threads=max(1, workers) * per)
    return PredictReport(out, exams, frames, failures, len(todo), resumed, time.perf_counter() - t0)


def _done(rec: dict | None, fp: str) -> dict | None:
    """A state record that counts as done: screened with the same bundle and settings."""
    return rec if rec is not None and rec.get("fingerprint") == fp and rec.get("status") == "ok" else None


def _frame_row(f: dict) -> dict:
    box = f.get("valve_box") or [""] * 4
    return {**f, "valve_x1": box[0], "valve_y1": box[1], "valve_x2": box[2], "valve_y2": box[3]}


def _exam_row(e: dict) -> dict:
    iv = e.get("spread") or ["", ""]
    d = e.get("driving_frame") or {}
    return {**e, "spread_low": iv[0], "spread_high": iv[1], "driving_source": d.get("source", ""),
            "driving_frame": d.get("frame_index", ""), "sources": ";".join(e["sources"]),
            "probability": "" if e["probability"] is None else e["probability"]}


def grade_columns(bundle: Bundle, frames: list[dict], exams: list[dict]) -> tuple[list, list, list, list]:
    """(frame columns, exam columns, frame rows, exam rows) with the grade: ``grade_p0..`` per frame; per exam
    ``grade``, ``grade_p0..`` and ``grade_frames`` (the decided frames it rests on, as the decision)."""
    k = len(bundle.grade_info["classes"])
    probs = [f"grade_p{i}" for i in range(k)]

    def spread(row: dict) -> dict:
        p = row.get("grade_probabilities") or [None] * k
        return {**row, **dict(zip(probs, p))}

    return (FRAME_COLUMNS + probs, EXAM_COLUMNS + ["grade", *probs, "grade_frames"],
            [spread(f) for f in frames], [spread(e) for e in exams])


CLIP_COLUMNS = ["exam_id", "source", "view", "view_probability", "view_source", "screened", "reason", "n_frames",
                "n_decided"]


def clip_rows(clips: Sequence[ClipResult]) -> list[dict]:
    """One row per clip with its view and, when it was not screened, why (``clips.csv``); [] when no clip has a
    view (no view model, no header rule): the outputs are then those of bundles made before views."""
    if not any(c.view is not None for c in clips):
        return []
    rows = []
    for c in clips:
        v = c.view or {}
        rows.append({"exam_id": c.exam_id, "source": c.source, "view": v.get("view", ""),
                     "view_probability": v.get("probability", ""), "view_source": v.get("source", ""),
                     "screened": "no" if v.get("reason") else "yes", "reason": v.get("reason", ""),
                     "n_frames": len(c.frames), "n_decided": sum(f.status == "decided" for f in c.frames)})
    return rows


def _write_outputs(out: Path, bundle: Bundle, exams: list[dict], frames: list[dict], failures: list[dict],
                   s: ScreeningSettings, backend: str, report: bool, clips: list[dict] | None = None,
                   report_threads: int = 1) -> None:
    def blank(rows):
        return [{k: ("" if v is None else v) for k, v in r.items()} for r in rows]

    frame_cols, exam_cols = FRAME_COLUMNS, EXAM_COLUMNS
    if bundle.has_grade:  # the grade's columns only with a grade head: a no-grade bundle's files stay as they were
        frame_cols, exam_cols, frames_rows, exam_rows = grade_columns(bundle, frames, exams)
    else:
        frames_rows, exam_rows = frames, exams
    if clips:  # the view columns and clips.csv only when a view model or the header decided a clip's view
        frame_cols = frame_cols + ["view", "view_probability"]
        atomic_write_text(out / "clips.csv", csv_text(CLIP_COLUMNS, blank(clips)))
    atomic_write_text(out / "frames.csv", csv_text(frame_cols, blank([_frame_row(f) for f in frames_rows])))
    atomic_write_text(out / "exams.csv", csv_text(exam_cols, blank([_exam_row(e) for e in exam_rows])))
    atomic_write_text(out / "failures.csv", csv_text(["source", "reason"], failures))
    doc = {"model": bundle.card(), "bundle": str(bundle.folder), "backend": backend, "settings": asdict(s),
           "exams": exams, "frames": frames, "failures": failures, **({"clips": clips} if clips else {})}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=1, default=str) + "\n")
    if report:
        from echoavc.report import write_report

        write_report(out, exams, frames, {**bundle.card(), "backend": backend}, failures, clips=clips or (),
                     threads=report_threads)


__all__ = ["predict", "open_key", "PredictReport", "FRAME_COLUMNS", "EXAM_COLUMNS", "CLIP_COLUMNS", "clip_rows",
           # re-exported from echoavc.screening for older callers
           "Screener", "FrameResult", "ClipResult", "exam_results", "exam_id_of", "screen_input", "STATUS_TEXT",
           "HEAT_MAP_FILE"]
