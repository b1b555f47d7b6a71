"""One exam's screening outcome as DICOM objects a PACS files beside the exam.

- a Comprehensive SR holding a TID 1500 Measurement Report (highdicom): finding aortic valve calcification
  present / absent / undetermined, the calibrated probability, the grade when there is one, the valve box as a
  closed POLYLINE on the driving instance and frame in that frame's ORIGINAL pixels, the algorithm identified
  (TID 4019: name ``echoavc``, version, bundle hash) and "research use only";
- a Secondary Capture of the driving frame with box and heat map (the overlay ``predict`` drew).

Both go into the source's study, each in its own new series. These objects are IDENTIFIED (a PACS files them
by patient and study): they are written to a DICOM output folder, never into the de-identified results folder.
Their UIDs are derived from the study and the bundle, so screening a study again with the same bundle gives the
same UIDs and replaces rather than duplicates.

Boxes in predict's records are in standard-frame pixels; they are mapped back through the clip's
:class:`~echoavc.cone.transform.StandardTransform`, recomputed from the source file exactly as screening
found it. Pixel coordinates are continuous pixel-edge coordinates in both, as DICOM's SCOORD are (the top
left corner of the top left pixel is 0,0).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from echoavc.errors import EchoAVCError

MANUFACTURER = "echoavc"
ALGORITHM_NAME = "echoavc"
RESEARCH_ONLY_TEXT = "Research use only: not for clinical diagnosis or treatment decisions."
SR_SERIES_DESCRIPTION = "echoavc AVC screening SR (research use only)"
SC_SERIES_DESCRIPTION = "echoavc AVC screening picture (research use only)"
SR_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902
#: our own coding scheme (the "99" prefix marks a private scheme in DICOM) for concepts without a standard code
SCHEME = "99ECHOAVC"


def _code(value: str, meaning: str, scheme: str = SCHEME):
    import highdicom as hd

    return hd.sr.CodedConcept(value, scheme, meaning)


def bundle_hash(meta: dict) -> str:
    """A short hash identifying a bundle by the contents of its files (bundle.json lists their sha256)."""
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise EchoAVCError("bundle record lists no files: cannot identify the bundle")
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def result_uid(kind: str, study_uid: str, bhash: str) -> str:
    """A UID that depends only on (kind, study, bundle): the same exam screened again gets the same one."""
    return name_uid("echoavc-results", kind, str(study_uid), bhash)


def name_uid(*parts: str) -> str:
    """A name-based UID under the 2.25 (UUID) root (pydicom's generate_uid ignores its entropy under 2.25)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, '/'.join(parts)).int}"


def is_echoavc_result(ds: Dataset) -> bool:
    """True for instances echoavc itself produced (never screened again)."""
    return (str(ds.get("Manufacturer", "") or "") == MANUFACTURER
            and str(ds.get("SeriesDescription", "") or "").startswith("echoavc "))


# ---------------------------------------------------------------- geometry


def closed_polyline(box) -> np.ndarray:
    """(x1, y1, x2, y2) -> the rectangle as a closed polyline (5 points, first repeated), (column, row)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)


def polyline_box(points) -> list[float]:
    """The bounding box (x1, y1, x2, y2) of a polyline: the inverse of :func:`closed_polyline`."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return [float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())]


def original_box(standard_box, transform) -> np.ndarray:
    """A box in standard-frame pixels -> the original frame's pixels (clipped to the window's extent)."""
    return transform.box_to_original(standard_box)


# ---------------------------------------------------------------- what is needed per exam


@dataclass
class ExamEvidence:
    """What the DICOM objects of one exam are made from."""

    source: Dataset  #: the driving instance (identified, as read from the PACS or file)
    exam: dict  #: predict's exam record
    frame: dict | None  #: predict's record of the driving frame (None: undetermined exam)
    box_original: np.ndarray | None  #: the valve box in the original frame's pixels
    picture: np.ndarray | None  #: RGB uint8 picture for the secondary capture


def driving_frame_record(exam: dict, frames: list[dict]) -> dict | None:
    d = exam.get("driving_frame")
    if not d:
        return None
    return next((f for f in frames if f["source"] == d["source"] and int(f["frame_index"]) == int(d["frame_index"])),
                None)


def transform_of(data: bytes, name: str, ingest_settings):
    """The clip's StandardTransform, found exactly as screening found it (same cone finder, same settings)."""
    from echoavc.dicom.read import open_dicom
    from echoavc.preprocess import prepare_clip

    return prepare_clip(open_dicom(data, name), ingest_settings).frame.transform


def exam_evidence(data: bytes, name: str, exam: dict, frames: list[dict], ingest_settings,
                  overlay_png: str | Path | None = None) -> ExamEvidence:
    """Read the driving instance's bytes, map the driving frame's box back to original pixels and pick the
    picture: predict's overlay (box and heat map on the standard frame) when there is one, else the original
    frame with the box drawn on it."""
    from echoavc.dicom.read import decode_frames, open_dicom

    clip = open_dicom(data, name)
    frame = driving_frame_record(exam, frames)
    box = None
    picture = None
    if frame is not None and frame.get("valve_box"):
        box = original_box(frame["valve_box"], transform_of(data, name, ingest_settings))
    if overlay_png and Path(overlay_png).is_file():
        bgr = cv2.imread(str(overlay_png), cv2.IMREAD_COLOR)
        if bgr is not None:
            picture = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if picture is None:
        from echoavc.report import frame_overlay

        index = int(frame["frame_index"]) if frame is not None else 0
        (_, image), = decode_frames(clip, [index])
        label = _finding_words(exam)
        picture = frame_overlay(image, box=box, label=label, decision=exam.get("decision") or None)
    return ExamEvidence(clip.dataset, exam, frame, box, picture)


def _finding_words(exam: dict) -> str:
    p = exam.get("probability")
    return f"{exam.get('decision', 'undetermined')}" + (f" P={float(p):.2f}" if p is not None else "")


# ---------------------------------------------------------------- the objects


def algorithm_id(meta: dict):
    """TID 4019 Algorithm Identification: what produced the result, down to the bundle's files."""
    import highdicom as hd

    version = str(meta.get("versions", {}).get("echoavc") or "unknown")
    return hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME, version=f"{version}+bundle.{bundle_hash(meta)}",
        parameters=[f"bundle={meta.get('name', '')}", f"bundle_sha256_16={bundle_hash(meta)}",
                    f"exam_threshold={float(meta['thresholds']['exam']):.6g}"],
        manufacturer=MANUFACTURER)


def build_sr(ev: ExamEvidence, meta: dict) -> Dataset:
    """The Comprehensive SR with the TID 1500 measurement report for one exam."""
    import highdicom as hd

    src, exam = ev.source, ev.exam
    study = str(src.StudyInstanceUID)
    bhash = bundle_hash(meta)
    algo = algorithm_id(meta)
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=name_uid("echoavc-device", bhash), name=ALGORITHM_NAME,
            manufacturer_name=MANUFACTURER, model_name=str(meta.get("name", ""))[:64] or ALGORITHM_NAME,
            serial_number=bhash))
    context = hd.sr.ObservationContext(observer_device_context=device)
    decision = exam.get("decision", "undetermined")
    finding_value = {"calcified": codes.SCT.Present, "not calcified": codes.SCT.Absent}.get(
        decision, codes.SCT.Undetermined)
    finding = _code("AVC", "Aortic valve calcification")
    evaluations = [hd.sr.QualitativeEvaluation(finding, finding_value)]
    measurements = []
    if exam.get("probability") is not None:
        measurements.append(hd.sr.Measurement(
            name=_code("AVC-P", "Calibrated probability of aortic valve calcification"),
            value=float(exam["probability"]), unit=codes.UCUM.NoUnits, algorithm_id=algo,
            finding_sites=[hd.sr.FindingSite(codes.SCT.AorticValve)]))
    if exam.get("grade") not in (None, ""):
        measurements.append(hd.sr.Measurement(
            name=_code("AVC-G", "Aortic valve calcification grade"), value=float(exam["grade"]),
            unit=hd.sr.CodedConcept("{grade}", "UCUM", "grade"), algorithm_id=algo))
    region = None
    if ev.box_original is not None:
        frames = None
        if int(src.get("NumberOfFrames", 1) or 1) > 1:
            frames = [int(ev.frame["frame_index"]) + 1]  # DICOM frame numbers start at 1
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=closed_polyline(ev.box_original),
            source_image=hd.sr.SourceImageForRegion(str(src.SOPClassUID), str(src.SOPInstanceUID), frames))
    tracking = hd.sr.TrackingIdentifier(uid=result_uid("tracking", study, bhash), identifier="aortic valve")
    if region is not None:
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_region=region, finding_type=finding, algorithm_id=algo,
            finding_sites=[hd.sr.FindingSite(codes.SCT.AorticValve)], measurements=measurements or None,
            qualitative_evaluations=evaluations)
    else:
        # no valve box (undetermined exam): TID 1501, a measurement group about the source image as a whole
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, finding_type=finding, algorithm_id=algo,
            finding_sites=[hd.sr.FindingSite(codes.SCT.AorticValve)], measurements=measurements or None,
            qualitative_evaluations=evaluations,
            source_images=[hd.sr.SourceImageForMeasurementGroup(str(src.SOPClassUID), str(src.SOPInstanceUID))])
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.SCT.Echocardiography,
                                     imaging_measurements=[group])
    # TID 1500's root-level comment: where "research use only" travels with the result itself
    report[0].ContentSequence.append(hd.sr.TextContentItem(
        name=codes.DCM.Comment, value=_comment(exam, meta), relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    sr = hd.sr.ComprehensiveSR(
        evidence=[src], content=report[0], series_instance_uid=result_uid("sr-series", study, bhash),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=result_uid("sr", study, bhash), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=SR_SERIES_DESCRIPTION)
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "echoavc concepts"
    scheme.CodingSchemeResponsibleOrganization = "echoavc developers"
    sr.CodingSchemeIdentificationSequence = [scheme]  # declares our private scheme, as PS3.3 C.12.1 asks
    sr.ManufacturerModelName = str(meta.get("name", ""))[:64] or ALGORITHM_NAME
    sr.SoftwareVersions = str(meta.get("versions", {}).get("echoavc") or "unknown")
    sr.DeviceSerialNumber = bhash
    return sr


def _comment(exam: dict, meta: dict) -> str:
    p = exam.get("probability")
    spread = exam.get("spread")
    parts = [RESEARCH_ONLY_TEXT.rstrip("."), f"echoavc screening: {exam.get('decision', 'undetermined')}"]
    if p is not None:
        parts.append(f"calibrated P(calcified) {float(p):.3f} at exam threshold {float(exam['threshold']):.3f}")
    if spread:  # a range over clips (or frames), not a confidence interval
        parts.append(f"range over {exam.get('spread_of') or 'frames'} {float(spread[0]):.3f}-{float(spread[1]):.3f}")
    parts.append(f"{exam.get('n_decided', 0)} of {exam.get('n_frames', 0)} frames decided")
    if exam.get("clips_agreeing"):
        parts.append(f"clips agreeing {exam['clips_agreeing']}, frames agreeing {exam.get('frames_agreeing', '')}")
    if exam.get("reason"):
        parts.append(str(exam["reason"]))
    parts.append(f"bundle {meta.get('name', '')} ({bundle_hash(meta)})")
    return ". ".join(parts)[:1024]


def build_sc(ev: ExamEvidence, meta: dict) -> Dataset:
    """The Secondary Capture of the driving frame with box and heat map, in the source's study."""
    import highdicom as hd

    src = ev.source
    study = str(src.StudyInstanceUID)
    bhash = bundle_hash(meta)
    picture = np.ascontiguousarray(ev.picture, dtype=np.uint8)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=src, pixel_array=picture, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=("A", "F"),
        series_instance_uid=result_uid("sc-series", study, bhash),
        series_number=SC_SERIES_NUMBER, sop_instance_uid=result_uid("sc", study, bhash), instance_number=1,
        manufacturer=MANUFACTURER, transfer_syntax_uid="1.2.840.10008.1.2.1",
        series_description=SC_SERIES_DESCRIPTION)
    # an echo frame has no patient orientation: highdicom wants one, DICOM allows it empty (type 2C)
    sc.PatientOrientation = src.get("PatientOrientation", "") or ""
    # type 2C; dciodvfy asks for it present, and warns (no error) when it is empty as here
    sc.Laterality = src.get("Laterality", "") or ""
    sc.ManufacturerModelName = str(meta.get("name", ""))[:64] or ALGORITHM_NAME
    sc.SoftwareVersions = str(meta.get("versions", {}).get("echoavc") or "unknown")
    sc.DeviceSerialNumber = bhash
    sc.BurnedInAnnotation = "YES"  # the label is drawn into the pixels
    sc.ImageComments = _comment(ev.exam, meta)[:10240]
    sc.DerivationDescription = ("echoavc screening overlay: the driving frame, its valve box and, when drawn, "
                                "the Grad-CAM heat map")
    ref = Dataset()
    ref.ReferencedSOPClassUID = src.SOPClassUID
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    return sc


@dataclass
class ResultFiles:
    exam_id: str
    sr: Path
    sc: Path
    sr_uid: str
    sc_uid: str


def write_results(ev: ExamEvidence, meta: dict, dicom_out: str | Path) -> ResultFiles:
    """Build the SR and SC of one exam and write them (atomically) under ``dicom_out``/<study uid>/."""
    from echoavc.files import atomic_write_bytes

    sr, sc = build_sr(ev, meta), build_sc(ev, meta)
    folder = Path(dicom_out) / str(ev.source.StudyInstanceUID)
    paths = []
    for ds, stem in ((sr, "sr"), (sc, "sc")):
        path = folder / f"{stem}-{ds.SOPInstanceUID}.dcm"
        atomic_write_bytes(path, to_bytes(ds))
        paths.append(path)
    return ResultFiles(ev.exam["exam_id"], paths[0], paths[1], str(sr.SOPInstanceUID), str(sc.SOPInstanceUID))


def to_bytes(ds: Dataset) -> bytes:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def check_apart(results_out: str | Path, dicom_out: str | Path) -> None:
    """The identified DICOM folder and the de-identified results folder must not hold one another."""
    a, b = Path(results_out).resolve(), Path(dicom_out).resolve()
    if a == b or a in b.parents or b in a.parents:
        raise EchoAVCError(f"the DICOM output folder (identified) must be apart from the de-identified results "
                           f"folder {results_out}", dicom_out)


def read_predict_results(folder: str | Path):
    """A results folder ``echoavc predict`` wrote, as what :func:`exam_results_to_dicom` takes (out, exams, frames)."""
    from types import SimpleNamespace

    path = Path(folder) / "results.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise EchoAVCError("not a predict results folder: no results.json", folder) from None
    except (OSError, ValueError) as exc:
        raise EchoAVCError(f"unreadable results.json ({type(exc).__name__})", path) from None
    return SimpleNamespace(out=Path(folder), exams=doc.get("exams", []), frames=doc.get("frames", []))


def exam_results_to_dicom(report, bundle, dicom_out: str | Path, *, read=None,
                          on_failure=None) -> list[ResultFiles]:
    """SR and SC for every exam of a :class:`~echoavc.predict.PredictReport` whose driving instance is DICOM.

    ``bundle``: the loaded bundle (``load_bundle(model)``). ``read(source name) -> bytes`` reads an input
    (default: the file or zip member the name points to). An exam that cannot be written is reported through
    ``on_failure(exam_id, reason)`` and skipped; the others go on.
    """
    from echoavc.runner import Source

    def default_read(name: str) -> bytes:
        path, _, member = name.partition("!")
        return Source(Path(path), member or None).read()

    check_apart(report.out, dicom_out)
    read = read or default_read
    out = []
    for exam in report.exams:
        name = (exam.get("driving_frame") or {}).get("source") or (exam.get("sources") or [None])[0]
        try:
            if name is None:
                raise EchoAVCError("no source instance")
            data = read(name)
            overlay = report.out / exam["overlay"] if exam.get("overlay") else None
            ev = exam_evidence(data, name, exam, report.frames, bundle.ingest_settings(), overlay)
            out.append(write_results(ev, bundle.meta, dicom_out))
        except EchoAVCError as exc:
            if on_failure is None:
                raise
            on_failure(exam["exam_id"], exc.reason)
    return out


__all__ = ["build_sr", "build_sc", "bundle_hash", "check_apart", "closed_polyline", "exam_evidence",
           "exam_results_to_dicom",
           "ExamEvidence", "is_echoavc_result", "polyline_box", "read_predict_results", "result_uid", "ResultFiles",
           "write_results", "MANUFACTURER", "RESEARCH_ONLY_TEXT"]
