"""``echoavc ingest``: DICOM files in, de-identified standard frames and a manifest out.

For each input file (folders are walked, zip archives opened): parse, check the
modality, decode the kept frames, find the cone once per clip, black out
everything outside it, crop and letterbox to the standard square, write one PNG
per frame. The manifest (one row per frame) is the contract every later stage
reads; ``source_sha256`` + ``frame_index`` is its join key.

Batches never stop on a bad file: it becomes one line in ``failures.csv``. Every
file is written atomically and a file's state record last, so a re-run skips
what is done (by content hash) and the result is byte-identical to an
uninterrupted run. Anything naming original paths or identifiers is written
beside the key, never into the output folder.
"""

from __future__ import annotations

import csv
import json
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from echoavc.cone import Cone
from echoavc.cone.transform import StandardTransform
from echoavc.dicom.deid import PseudonymKey, check_key_outside, date_shift_days, pseudonym, shifted_study_date
from echoavc.dicom.read import DicomClip, open_dicom, region_spacing_mm, sha256_bytes
from echoavc.dicom.write import write_deidentified_dicom
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_bytes, csv_text, png_flags
from echoavc.preprocess import prepare_clip
from echoavc.runner import Source, StateStore, check_engine, failure_reason, find_sources, open_state, run_batch
from echoavc.settings import IngestSettings

MANIFEST_COLUMNS = [
    "source_sha256", "frame_index", "image_path",
    "patient_id", "patient_id_source", "study_id", "study_date", "exam_order", "series_id", "instance_number",
    "n_frames", "frame_time_ms", "heart_rate_bpm",
    "modality", "manufacturer", "model", "transfer_syntax", "photometric",
    "original_rows", "original_cols", "channels",
    "cone_source", "cone_kind", "cone_flag", "cone",
    "crop_x", "crop_y", "crop_w", "crop_h", "scale", "pad_x", "pad_y", "std_size",
    "pixel_spacing_x_mm", "pixel_spacing_y_mm", "overlay_in_cone", "burned_in_annotation",
]
FAILURE_COLUMNS = ["source_sha256", "reason"]
SETTINGS_FILE = "ingest.json"


# ---------------------------------------------------------------- one file


@dataclass
class FileResult:
    """What processing one file produced. ``pairs`` holds originals: it never leaves the main process's memory
    except into the pseudonym map beside the key."""

    sha256: str
    status: str  # "done" | "skipped" | "failed"
    reason: str = ""
    rows: list[dict] = field(default_factory=list)
    pairs: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def process_file(data: bytes, name: str, out_dir: Path, secret: bytes, settings: IngestSettings,
                 threads: int = 1) -> FileResult:
    """Ingest one file's bytes, with ``threads`` for its frames. Never raises for bad input: a failure is a
    result."""
    sha = sha256_bytes(data)
    try:
        clip = open_dicom(data, name, sha)
        modality = clip.modality.upper()
        if settings.modalities and modality not in {m.upper() for m in settings.modalities}:
            return FileResult(sha, "skipped", f"modality {modality or 'missing'} not in {','.join(settings.modalities)}")
        return _ingest_clip(clip, out_dir, secret, settings, threads)
    except Exception as exc:  # bad input, or a decoder bug: one failure row, the batch goes on
        return FileResult(sha, "failed", failure_reason(exc, "out of memory while decoding"))


_WORKER_KEY: dict = {}


def _ray_worker_init(key_file: str, key_marker: str) -> None:
    # on Ray the secret never travels (Ray keeps actor arguments): the worker reads the key file the driver made
    from echoavc.runner_ray import worker_secret

    _WORKER_KEY["secret"] = worker_secret(key_file, key_marker)


def _ingest_source(path: str, member: str | None, sha: str, out_dir: str, settings: IngestSettings) -> FileResult:
    """On a Ray worker: read the input from the shared path and ingest it under the key this worker read."""
    src = Source(Path(path), member)
    try:
        data = src.read()
    except EchoAVCError as exc:
        return FileResult(sha, "failed", f"{exc.reason} on a Ray worker (is it on a path every node shares?)")
    return process_file(data, src.name, Path(out_dir), _WORKER_KEY["secret"], settings)


def identities(ds, secret: bytes, sha: str) -> tuple[dict, list[tuple[str, str, str]], list[str]]:
    """Pseudonymous patient, study and series ids and the study's shifted date, with the originals for the
    key-side map."""
    pairs, warnings = [], []
    pid = str(ds.get("PatientID", "") or "").strip()
    study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if pid:
        # the bare PatientID, so a labels file written by hand pseudonymises to the same id
        original, source = pid, "PatientID"
    elif study_uid:
        original, source = f"study:{study_uid}", "StudyInstanceUID"
        warnings.append("no PatientID: the study stands in for the patient")
    else:
        original, source = f"file:{sha}", "file"
        warnings.append("no PatientID and no StudyInstanceUID: the file stands in for the patient")
    ids = {"patient_id": pseudonym(secret, "patient", original), "patient_id_source": source}
    pairs.append(("patient", original, ids["patient_id"]))
    for kind, uid in (("study", study_uid), ("series", series_uid)):
        value = uid or f"file:{sha}"
        ids[f"{kind}_id"] = pseudonym(secret, kind, value)
        pairs.append((kind, value, ids[f"{kind}_id"]))
    # the patient's dates all move by one keyed shift, as in the de-identified DICOM: intervals between exams stay
    ids["study_date"] = shifted_study_date(ds, date_shift_days(secret, ids["patient_id"]))
    return ids, pairs, warnings


def _ingest_clip(clip: DicomClip, out_dir: Path, secret: bytes, settings: IngestSettings,
                 threads: int = 1) -> FileResult:
    ds = clip.dataset
    ids, pairs, warnings = identities(ds, secret, clip.sha256)
    prep = prepare_clip(clip, settings)
    std = prep.frame
    cone, mask, transform, grey, sample = std.cone, std.mask, std.transform, std.grey, prep.sample
    shape = prep.shape
    overlay = std.overlay

    names = _names(ids, ds, clip.sha256)
    frames_dir = out_dir / "frames" / ids["study_id"]
    frames_dir.mkdir(parents=True, exist_ok=True)
    spacing = region_spacing_mm(ds, _centre(cone, shape))
    frame_time = _frame_times(ds, clip.n_frames)
    base = {
        "source_sha256": clip.sha256,
        **ids,
        "instance_number": _int_or_empty(ds.get("InstanceNumber")),
        "n_frames": clip.n_frames,
        "heart_rate_bpm": _int_or_empty(ds.get("HeartRate")),
        "modality": clip.modality,
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "model": str(ds.get("ManufacturerModelName", "") or ""),
        "transfer_syntax": clip.transfer_syntax,
        "photometric": clip.photometric,
        "original_rows": shape[0],
        "original_cols": shape[1],
        "channels": 1 if grey else 3,
        "cone_source": cone.source,
        "cone_kind": cone.kind,
        "cone_flag": cone.flag,
        "cone": json.dumps(cone.to_dict(), separators=(",", ":")),
        **{k: v for k, v in transform.to_dict().items() if k != "size"},
        "std_size": transform.size,
        "pixel_spacing_x_mm": spacing[0] if spacing else "",
        "pixel_spacing_y_mm": spacing[1] if spacing else "",
        "overlay_in_cone": overlay,
        "burned_in_annotation": str(ds.get("BurnedInAnnotation", "") or ""),
    }

    def write_frame(index: int, frame: np.ndarray) -> tuple[dict, np.ndarray | None]:
        masked = prep.masked(frame)
        rel = Path("frames") / ids["study_id"] / f"{names}-f{index:04d}.png"
        _write_png(out_dir / rel, transform.apply(masked), settings.png_compression)
        row = {**base, "frame_index": index, "image_path": rel.as_posix(),
               "frame_time_ms": frame_time[index] if frame_time else ""}
        return row, (masked if settings.write_dicom else None)

    frames = prep.frames
    if threads > 1:
        # decoding holds the GIL; masking, resizing and PNG encoding release it, so they overlap
        results, pending = [], deque()
        with ThreadPoolExecutor(threads) as pool:
            for index, frame in frames():
                pending.append(pool.submit(write_frame, index, frame))
                while len(pending) > 2 * threads:  # bounded: a long clip never sits in memory whole
                    results.append(pending.popleft().result())
            results.extend(f.result() for f in pending)
    else:
        results = [write_frame(index, frame) for index, frame in frames()]
    rows = [r for r, _ in results]
    masked_frames = [m for _, m in results if m is not None]
    if settings.qc:
        _write_qc(out_dir / "qc" / ids["study_id"] / f"{names}.png", sample[0], cone, mask, transform, grey,
                  settings.png_compression)
    if settings.write_dicom:
        write_deidentified_dicom(
            out_dir / "dicom" / ids["study_id"] / f"{names}.dcm", clip, masked_frames, secret, ids, prep.kept,
        )
    if cone.flag:
        warnings.append(f"cone: {cone.flag}")
    return FileResult(clip.sha256, "done", "", [{c: r.get(c, "") for c in MANIFEST_COLUMNS} for r in rows],
                      pairs, warnings)


def _names(ids: dict, ds, sha: str) -> str:
    inst = _int_or_empty(ds.get("InstanceNumber"))
    # the hash prefix keeps two instances that share series and number apart
    return f"{ids['series_id']}-i{int(inst) if inst != '' else 0:04d}-{sha[:8]}"


def _centre(cone: Cone, shape) -> tuple[float, float]:
    x, y, w, h = cone.bbox(shape)
    return (x + w / 2, y + h / 2)


def _frame_times(ds, n: int) -> list[float] | None:
    """Offset of each frame from the first, in ms."""
    try:
        if "FrameTimeVector" in ds:
            v = [float(x) for x in ds.FrameTimeVector]
            return list(np.cumsum([0.0] + v[1:n])) if len(v) >= n else None
        if "FrameTime" in ds and ds.FrameTime not in (None, ""):
            return [round(i * float(ds.FrameTime), 3) for i in range(n)]
    except (TypeError, ValueError):
        return None
    return None


def _int_or_empty(value) -> int | str:
    try:
        return int(value) if value not in (None, "") else ""
    except (TypeError, ValueError):
        return ""


# ---------------------------------------------------------------- writing


def _write_png(path: Path, image: np.ndarray, compression: int) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image, png_flags(compression))
    if not ok:
        raise EchoAVCError("PNG encoding failed", path)
    atomic_write_bytes(path, buf.tobytes())


def _write_qc(path: Path, frame: np.ndarray, cone: Cone, mask: np.ndarray, transform: StandardTransform,
              grey: bool, compression: int) -> None:
    """Before (cone outlined) and after, side by side. Outside the cone the original is pixelated,
    so burned-in names and dates stay unreadable while the field's edge can still be judged. An implausible
    cone (``Cone.flag`` starting IMPLAUSIBLE) is outlined in red under a red banner with the flag."""
    rgb = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    h, w = rgb.shape[:2]
    block = max(8, min(h, w) // 40)
    coarse = cv2.resize(cv2.resize(rgb, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA),
                        (w, h), interpolation=cv2.INTER_NEAREST)
    before = np.where(mask[..., None].astype(bool), rgb, (coarse * 0.6).astype(np.uint8))
    pts = np.round(np.asarray(cone.polygon, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
    doubtful = cone.flag.startswith("IMPLAUSIBLE")
    cv2.polylines(before, [pts], True, (255, 0, 0) if doubtful else (0, 255, 0), max(1, min(h, w) // 240),
                  cv2.LINE_AA)
    after = transform.apply(cv2.bitwise_and(rgb, rgb, mask=mask))
    if grey:
        after = cv2.cvtColor(cv2.cvtColor(after, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    height = 480
    before = cv2.resize(before, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    after = cv2.resize(after, (height, height), interpolation=cv2.INTER_AREA)
    gap = np.full((height, 8, 3), 255, np.uint8)
    picture = np.hstack([before, gap, after])
    if doubtful:  # RGB here: red banner, white text
        picture[:22] = (200, 0, 0)
        cv2.putText(picture, cone.flag[:150], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
    _write_png(path, picture, compression)


# ---------------------------------------------------------------- the batch


@dataclass
class IngestReport:
    out_dir: Path
    done: int = 0
    skipped: int = 0
    failed: int = 0
    resumed: int = 0
    frames: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): for the terminal only
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def manifest(self) -> Path:
        return self.out_dir / "manifest.csv"


def ingest(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    key_path: str | Path,
    settings: IngestSettings = IngestSettings(),
    workers: int = 1,
    progress: bool = True,
    engine: str = "local",
    address: str | None = None,
) -> IngestReport:
    """Ingest DICOM files, folders and zip archives into ``out_dir``; see the module docstring.

    ``engine``: ``local`` (``workers`` processes) or ``ray`` (``workers`` Ray actors, 0: one per CPU of the cluster
    at ``address``; inputs, ``out_dir`` and the key on a path every node shares)."""
    check_engine(engine)
    out_dir, key_path = Path(out_dir), Path(key_path)
    check_key_outside(key_path, out_dir, "output folder")
    key = PseudonymKey(key_path)
    store = open_state(out_dir)  # stale temporaries left by a run that was killed mid-write go first
    state = store.folder
    report = IngestReport(out_dir)
    # a file done with other settings (size, frames kept, QC, DICOM) is done again
    fingerprint = sha256_bytes(json.dumps(asdict(settings), sort_keys=True, default=list).encode())[:16]
    # the settings travel with the frames: a model trained on them records them, and screening reuses them
    atomic_write_bytes(out_dir / SETTINGS_FILE, json.dumps({"settings": asdict(settings), "fingerprint": fingerprint},
                                                           indent=1, default=list).encode())
    sources, problems = find_sources(inputs)
    source_log: list[list[str]] = [[name, "", "failed", reason] for name, reason in problems]
    report.failures.extend(problems)
    report.failed += len(problems)

    def finish(item: tuple[Source, bytes], result: FileResult) -> None:
        src = item[0]
        key.remember(result.pairs)  # the map first: a state record must never outlive a lost pseudonym
        store.save(result.sha256, {"sha256": result.sha256, "status": result.status, "reason": result.reason,
                                   "rows": result.rows, "settings": fingerprint})
        _count(report, src, result)
        source_log.append([src.name, result.sha256, result.status, result.reason])

    todo: list[tuple[Source, bytes]] = []
    seen: set[str] = set()
    for src in sources:
        try:
            data = src.read()
        except EchoAVCError as exc:
            report.failed += 1
            report.failures.append((src.name, exc.reason))
            source_log.append([src.name, "", "failed", exc.reason])
            continue
        sha = sha256_bytes(data)
        record = store.load(sha)
        done_alike = record and record["status"] in ("done", "skipped") and record.get("settings") == fingerprint
        if sha in seen or done_alike:
            report.resumed += 1
            source_log.append([src.name, sha, "already done", ""])
            seen.add(sha)
            continue
        seen.add(sha)
        # Ray workers read the file again from the shared path: the driver keeps its hash, not its bytes
        todo.append((src, sha if engine == "ray" else data))

    # one file at a time shares the workers among its frames; several files take one worker each
    if engine == "ray":
        from echoavc.runner_ray import key_marker

        run_batch(todo, finish, workers=workers, label="ingest", progress=progress, engine="ray", address=address,
                  serial=None, initializer=_ray_worker_init,
                  initargs=(str(key.path.resolve()), key_marker(key.secret)),
                  parallel=lambda t: (_ingest_source, str(t[0].path), t[0].member, t[1], str(out_dir), settings),
                  failed=lambda t, reason: FileResult(t[1], "failed", reason))
    else:
        run_batch(todo, finish, workers=workers, label="ingest", progress=progress,
                  serial=lambda t: process_file(t[1], t[0].name, out_dir, key.secret, settings,
                                                threads=max(1, workers)),
                  parallel=lambda t: (process_file, t[1], t[0].name, out_dir, key.secret, settings),
                  cost=lambda t: len(t[1]))

    _write_tables(out_dir, state)
    _write_source_log(key, out_dir, source_log)
    return report


def _count(report: IngestReport, src: Source, result: FileResult) -> None:
    if result.status == "done":
        report.done += 1
        report.frames += len(result.rows)
    elif result.status == "skipped":
        report.skipped += 1
    else:
        report.failed += 1
        report.failures.append((src.name, result.reason))
    report.warnings.extend((src.name, w) for w in result.warnings)


def _load_state(state: Path, sha: str) -> dict | None:
    """A file's state record; None when missing or damaged (the file is done again)."""
    return StateStore(state).load(sha)


def read_settings(out_dir: str | Path) -> IngestSettings | None:
    """The settings an ingest folder was made with (None for folders made before they were recorded)."""
    from echoavc.settings import from_dict

    try:
        return from_dict(IngestSettings, json.loads((Path(out_dir) / SETTINGS_FILE).read_text())["settings"])
    except (OSError, ValueError, KeyError, TypeError, EchoAVCError):
        return None


def _write_tables(out_dir: Path, state: Path) -> None:
    """Manifest and failures from every state record, in a fixed order (byte-identical on re-runs)."""
    rows, failures = [], []
    for p in sorted(state.glob("*.json")):
        rec = _load_state(state, p.stem)
        if rec is None:
            continue
        if rec["status"] == "done":
            rows.extend(rec["rows"])
        elif rec["status"] == "failed":
            failures.append({"source_sha256": rec["sha256"], "reason": rec["reason"]})
    rows.sort(key=lambda r: (r["patient_id"], r["study_id"], r["series_id"], str(r["instance_number"]),
                             r["source_sha256"], int(r["frame_index"])))
    # each exam's place among its patient's dated exams (1 = first), from every record: stable on re-runs
    dates: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.get("study_date"):
            exam = (r["patient_id"], r["study_id"])
            dates[exam] = min(dates.get(exam, r["study_date"]), r["study_date"])
    order, counted = {}, {}
    for exam in sorted(dates, key=lambda e: (e[0], dates[e], e[1])):
        order[exam] = counted[exam[0]] = counted.get(exam[0], 0) + 1
    for r in rows:
        r["exam_order"] = order.get((r["patient_id"], r["study_id"]), "")
    atomic_write_bytes(out_dir / "manifest.csv", csv_text(MANIFEST_COLUMNS, rows).encode())
    atomic_write_bytes(out_dir / "failures.csv", csv_text(FAILURE_COLUMNS, failures).encode())


def _write_source_log(key: PseudonymKey, out_dir: Path, log: list[list[str]]) -> None:
    """Original paths -> hashes and outcomes, beside the key: folder names are often patient names."""
    path = key.path.with_name(key.path.name + ".sources.csv")
    fresh = not path.exists()
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(path, "a", newline="") as fh:
        if fresh:
            os.chmod(path, 0o600)
        w = csv.writer(fh)
        if fresh:
            w.writerow(["time", "out_dir", "source", "source_sha256", "status", "reason"])
        for row in log:
            w.writerow([stamp, str(out_dir.resolve()), *row])


__all__ = ["ingest", "IngestReport", "MANIFEST_COLUMNS", "find_sources", "process_file", "Source"]
