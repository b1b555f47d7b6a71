"""Screen one study held in a PACS, and put the results back beside it.

``screen_study("orthanc://HOST:PORT", uid, ...)`` (REST) or ``screen_study("dicom://AE@HOST:PORT", uid, ...)``
(DIMSE): fetch the study's instances into ``dicom_out/.incoming/`` (identified data stays on the identified
side), screen them with :func:`echoavc.predict.predict` into ``out`` (de-identified results, as always), build
the SR and SC of each exam (:mod:`echoavc.dicom.results`) into ``dicom_out``, upload them, and delete the
fetched copies. Instances echoavc produced are never screened. Result UIDs depend on study and bundle only,
so screening again replaces the results instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pydicom

from echoavc.dicom.results import ResultFiles, check_apart, exam_results_to_dicom, is_echoavc_result
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_bytes
from echoavc.pacs.dimse import Peer

INCOMING = ".incoming"


@dataclass(frozen=True)
class PacsSource:
    scheme: str  #: "orthanc" or "dicom"
    host: str
    port: int
    ae_title: str = ""  #: the called AE title (dicom:// only)

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def peer(self) -> Peer:
        return Peer(self.ae_title, self.host, self.port)


def is_pacs_url(text: str) -> bool:
    return str(text).startswith(("orthanc://", "dicom://"))


def parse_source(url: str) -> PacsSource:
    """``orthanc://HOST:PORT`` or ``dicom://AE@HOST:PORT``; EchoAVCError for anything else."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("orthanc", "dicom"):
        raise EchoAVCError("a PACS source is orthanc://HOST:PORT or dicom://AE@HOST:PORT", url)
    if parts.password is not None or (parts.scheme == "orthanc" and parts.username):
        raise EchoAVCError("credentials do not belong in the URL (anyone can read a command line): use "
                           "ECHOAVC_ORTHANC_USER/ECHOAVC_ORTHANC_PASSWORD or a credentials file", parts.hostname)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise EchoAVCError("host and port are needed, as in orthanc://HOST:PORT or dicom://AE@HOST:PORT", url)
    ae = parts.username or ""
    if parts.scheme == "dicom" and not re.fullmatch(r"[ -~]{1,16}", ae) or "\\" in ae:
        raise EchoAVCError("a dicom:// source needs the called AE title (1-16 characters): dicom://AE@HOST:PORT",
                           url)
    return PacsSource(parts.scheme, parts.hostname, int(port), ae)


@dataclass
class StudyScreening:
    """What screening one study did."""

    studies: list[str]  #: Study Instance UIDs screened
    report: object  #: echoavc.predict.PredictReport
    results: list[ResultFiles]
    fetched: int  #: instances fetched and screened
    skipped_own: int  #: instances echoavc produced (not screened)
    uploaded: list[str] = field(default_factory=list)  #: SOP Instance UIDs stored back in the PACS
    failures: list[tuple[str, str]] = field(default_factory=list)  #: (exam id, reason) of exams without results


def _keep(path: Path) -> bool:
    """False for instances echoavc produced (their header says so); those are removed, not screened."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not ours to judge here: predict reports unreadable files as failures
        return True
    return not is_echoavc_result(ds)


def _own_series(description: str, manufacturer: str) -> bool:
    from echoavc.dicom.results import MANUFACTURER

    return manufacturer == MANUFACTURER and description.startswith("echoavc ")


def fetch_orthanc(src: PacsSource, study_uid: str, folder: Path, credentials_file=None) -> tuple[int, int]:
    """Download the study's instances (except echoavc's own series) into ``folder``; (kept, skipped)."""
    from echoavc.pacs.orthanc import Orthanc, credentials

    client = Orthanc(src.http, credentials(credentials_file))
    study = client.study_id(study_uid)
    kept = skipped = 0
    for series in client.series(study):
        tags = series.get("MainDicomTags", {})
        ids = series.get("Instances") or client.instance_ids(series["ID"])
        if _own_series(tags.get("SeriesDescription", ""), tags.get("Manufacturer", "")):
            skipped += len(ids)
            continue
        paths = []
        for iid in ids:
            data = client.instance_file(iid)
            paths.append(folder / f"{hashlib.sha256(data).hexdigest()[:24]}.dcm")
            atomic_write_bytes(paths[-1], data)
        k, s = _keep_screenable(paths)
        kept, skipped = kept + k, skipped + s
    return kept, skipped


def _keep_screenable(paths) -> tuple[int, int]:
    """Delete the fetched files that are not to be screened; (kept, deleted)."""
    kept = skipped = 0
    for path in paths:
        if _keep(path):
            kept += 1
        else:
            path.unlink()
            skipped += 1
    return kept, skipped


def fetch_dimse(src: PacsSource, study_uid: str, folder: Path, local_ae: str, local_port: int) -> tuple[int, int]:
    """C-FIND the study's series, C-MOVE all but echoavc's own to a local Storage SCP; (kept, skipped)."""
    from echoavc.pacs.dimse import StorageSCP, find_series, move_series

    series = find_series(src.peer, study_uid, local_ae)
    if not series:
        raise EchoAVCError(f"study {study_uid} not found", str(src.peer))
    wanted, skipped = [], 0
    for s in series:
        if _own_series(str(s.get("SeriesDescription", "") or ""), str(s.get("Manufacturer", "") or "")):
            skipped += int(s.get("NumberOfSeriesRelatedInstances", 0) or 0)
        else:
            wanted.append(str(s.SeriesInstanceUID))
    with StorageSCP(folder, local_ae, local_port) as scp:
        if wanted:
            move_series(src.peer, study_uid, wanted, scp)
    kept, dropped = _keep_screenable(scp.received)
    return kept, skipped + dropped


def upload(src: PacsSource, results: list[ResultFiles], credentials_file=None, local_ae: str = "ECHOAVC") -> list[str]:
    """Store the SR and SC files in the PACS; returns their SOP Instance UIDs."""
    pairs = [(r.sr, r.sr_uid) for r in results] + [(r.sc, r.sc_uid) for r in results]
    if src.scheme == "orthanc":
        from echoavc.pacs.orthanc import Orthanc, credentials

        client = Orthanc(src.http, credentials(credentials_file))
        for path, uid in pairs:
            client.upload(path.read_bytes(), uid)
    else:
        from echoavc.pacs.dimse import store

        store(src.peer, [pydicom.dcmread(p) for p, _ in pairs], local_ae)
    return [uid for _, uid in pairs]


def _since(text: str) -> str:
    """``2024-01-31`` or ``20240131`` -> the DICOM date range ``20240131-``."""
    digits = str(text).replace("-", "")
    if not re.fullmatch(r"(19|20)\d{6}", digits):
        raise EchoAVCError(f"--since takes a date as YYYY-MM-DD, not {text!r}")
    return digits + "-"


def find_studies(source_url: str, *, patient: str | None = None, since: str | None = None,
                 credentials_file: str | Path | None = None, local_ae: str = "ECHOAVC") -> list[str]:
    """Study Instance UIDs of a patient's studies and/or the studies since a date."""
    src = parse_source(source_url)
    query = {}
    if patient:
        query["PatientID"] = str(patient)
    if since:
        query["StudyDate"] = _since(since)
    if not query:
        raise EchoAVCError("say which studies: a Study Instance UID, a patient id or a date")
    if src.scheme == "orthanc":
        from echoavc.pacs.orthanc import Orthanc, credentials

        return Orthanc(src.http, credentials(credentials_file)).study_uids(query)
    from echoavc.pacs.dimse import find_studies as dimse_find_studies

    return dimse_find_studies(src.peer, query, local_ae)


def _check_uid(uid: str) -> str:
    uid = str(uid).strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid) or len(uid) > 64:
        raise EchoAVCError(f"not a Study Instance UID: {uid!r}")
    return uid


def screen_studies(source_url: str, study_uids, model: str | Path, out: str | Path, dicom_out: str | Path, *,
                   settings=None, backend: str = "auto", workers: int = 1, threads: int = 0,
                   upload_results: bool = True, credentials_file: str | Path | None = None,
                   local_ae: str = "ECHOAVC", local_port: int = 11113, keep_fetched: bool = False,
                   overlays: str = "driving", report: bool = True, progress: bool = False,
                   key: str | Path | None = None) -> StudyScreening:
    """Fetch the studies, screen them in one predict run, write SR + SC per exam to ``dicom_out`` and upload
    them. ``out`` gets the de-identified results (frames.csv, exams.csv, report.html ...) exactly as
    ``echoavc predict`` writes them.

    ``local_ae``/``local_port``: our AE title and, for dicom:// sources, the port of the Storage SCP that
    receives the C-MOVE (the PACS must list ``local_ae`` with this host and port). ``key``: the ingest key
    (exam ids in ``out`` become its study pseudonyms; see :func:`echoavc.predict.predict`).
    """
    from echoavc.bundle import load_bundle
    from echoavc.predict import exam_id_of, open_key, predict

    src = parse_source(source_url)
    uids = sorted({_check_uid(u) for u in study_uids})
    if not uids:
        raise EchoAVCError("no studies to screen", source_url)
    check_apart(out, dicom_out)
    bundle = load_bundle(model)  # a broken bundle fails before anything is fetched
    secret = open_key(key, out)  # so does a key inside the results folder
    dicom_out = Path(dicom_out)
    folders = {uid: dicom_out / INCOMING / exam_id_of(uid) for uid in uids}
    kept = skipped = 0
    try:
        for uid, incoming in folders.items():
            if incoming.exists():
                shutil.rmtree(incoming)
            incoming.mkdir(parents=True)
            if src.scheme == "orthanc":
                k, s = fetch_orthanc(src, uid, incoming, credentials_file)
            else:
                k, s = fetch_dimse(src, uid, incoming, local_ae, local_port)
            kept, skipped = kept + k, skipped + s
        if kept == 0:
            raise EchoAVCError(f"{'study ' + uids[0] if len(uids) == 1 else f'{len(uids)} studies'} "
                               f"hold no instances to screen ({skipped} made by echoavc)", source_url)
        screened = predict(list(folders.values()), model, out, settings=settings, backend=backend,
                           workers=workers, threads=threads, overlays=overlays, report=report, progress=progress,
                           key=key)
        failures: list[tuple[str, str]] = []
        exam_ids = {exam_id_of(uid, secret) for uid in uids}
        # files without a Study Instance UID form exams of their own: they get results too
        screened.exams = [e for e in screened.exams if e["exam_id"] in exam_ids] or screened.exams
        results = exam_results_to_dicom(screened, bundle, dicom_out,
                                        on_failure=lambda e, reason: failures.append((e, reason)))
        uploaded = upload(src, results, credentials_file, local_ae) if upload_results and results else []
    finally:
        if not keep_fetched:
            for incoming in folders.values():
                shutil.rmtree(incoming, ignore_errors=True)
    return StudyScreening(uids, screened, results, kept, skipped, uploaded, failures)


def screen_study(source_url: str, study_uid: str, model: str | Path, out: str | Path, dicom_out: str | Path,
                 **options) -> StudyScreening:
    """:func:`screen_studies` for one study (options as there)."""
    return screen_studies(source_url, [study_uid], model, out, dicom_out, **options)


def screen_inputs(inputs, model: str | Path, out: str | Path, *, dicom_out: str | Path | None = None,
                  study=None, patient: str | None = None, since: str | None = None,
                  credentials_file: str | Path | None = None, local_ae: str = "ECHOAVC", local_port: int = 11113,
                  upload_results: bool = True, on_dicom_failure=None, key: str | Path | None = None,
                  **predict_options):
    """What ``echoavc predict`` runs: files, folders and zips through :func:`echoavc.predict.predict` (plus SR +
    SC per exam into ``dicom_out`` when given), or one PACS URL through :func:`screen_studies`. Returns the
    PredictReport. ``key``: the ingest key (keyed exam ids, see :func:`echoavc.predict.predict`).
    ``predict_options``: predict's keywords (settings, backend, workers, threads, overlays, report, progress)."""
    from echoavc.bundle import load_bundle
    from echoavc.predict import predict

    inputs = [str(x) for x in inputs]
    urls = [x for x in inputs if is_pacs_url(x)]
    if not urls:
        if study or patient or since:
            raise EchoAVCError("--study, --patient and --since need a PACS source (orthanc:// or dicom://)")
        if dicom_out is not None:
            check_apart(out, dicom_out)
        report = predict(inputs, model, out, key=key, **predict_options)
        if dicom_out is not None:
            exam_results_to_dicom(report, load_bundle(model), dicom_out, on_failure=on_dicom_failure)
        return report
    if len(inputs) != 1:
        raise EchoAVCError("a PACS source comes alone: one orthanc://HOST:PORT or dicom://AE@HOST:PORT")
    if predict_options.pop("engine", "local") != "local":
        raise EchoAVCError("a PACS source is screened on this machine: --engine ray takes files, folders and zips")
    predict_options.pop("address", None)
    if dicom_out is None:
        raise EchoAVCError("a PACS source needs --dicom-out (the SR and SC are written there before upload)")
    uids = [study] if isinstance(study, str) else list(study or [])
    if patient or since:
        found = find_studies(urls[0], patient=patient, since=since, credentials_file=credentials_file,
                             local_ae=local_ae)
        if not found:
            raise EchoAVCError("no study matches", urls[0])
        uids += found
    if not uids:
        raise EchoAVCError("a PACS source needs --study UID, --patient ID and/or --since DATE", urls[0])
    res = screen_studies(urls[0], uids, model, out, dicom_out, credentials_file=credentials_file, local_ae=local_ae,
                         local_port=local_port, upload_results=upload_results, key=key, **predict_options)
    if on_dicom_failure:
        for exam_id, reason in res.failures:
            on_dicom_failure(exam_id, reason)
    return res.report


__all__ = ["PacsSource", "StudyScreening", "find_studies", "is_pacs_url", "parse_source", "screen_inputs",
           "screen_studies", "screen_study", "INCOMING"]
