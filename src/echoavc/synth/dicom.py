"""Writing synthetic ultrasound DICOM files in several transfer syntaxes and colour models.

Supported combinations (``ENCODINGS``):

==============  ===========================  ==================
name            transfer syntax              photometric
==============  ===========================  ==================
raw_mono        Explicit VR Little Endian    MONOCHROME2
raw_rgb         Explicit VR Little Endian    RGB
raw_mono_ivr    Implicit VR Little Endian    MONOCHROME2
rle_mono        RLE Lossless                 MONOCHROME2
rle_rgb         RLE Lossless                 RGB
jpeg_mono       JPEG Baseline (Process 1)    MONOCHROME2
jpeg_ybr        JPEG Baseline (Process 1)    YBR_FULL_422
==============  ===========================  ==================

pydicom cannot encode JPEG baseline, so frames are encoded with Pillow
(4:2:2 chroma subsampling for YBR_FULL_422) and encapsulated with
``pydicom.encaps.encapsulate``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    PYDICOM_IMPLEMENTATION_UID,
    RLELossless,
    UID,
)

from echoavc.files import atomic_write_bytes

US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")

ENCODINGS = {
    "raw_mono": (ExplicitVRLittleEndian, "MONOCHROME2"),
    "raw_rgb": (ExplicitVRLittleEndian, "RGB"),
    "raw_mono_ivr": (ImplicitVRLittleEndian, "MONOCHROME2"),
    "rle_mono": (RLELossless, "MONOCHROME2"),
    "rle_rgb": (RLELossless, "RGB"),
    "jpeg_mono": (JPEGBaseline8Bit, "MONOCHROME2"),
    "jpeg_ybr": (JPEGBaseline8Bit, "YBR_FULL_422"),
}


@dataclass(frozen=True)
class Header:
    """Identifying and descriptive attributes of one file (all fake)."""

    patient_name: str  #: DICOM PN, e.g. "DOE^JANE"
    patient_id: str
    birth_date: str  #: YYYYMMDD
    sex: str
    study_uid: str
    series_uid: str
    sop_uid: str
    study_date: str
    study_time: str
    accession: str
    study_id: str
    institution: str
    referring: str
    operator: str
    manufacturer: str
    model: str
    station: str
    series_number: int
    instance_number: int
    frame_time_ms: float
    heart_rate: int
    acquisition_time: str


@dataclass(frozen=True)
class Region:
    """One SequenceOfUltrasoundRegions item (a 2D tissue sector)."""

    x0: int
    y0: int
    x1: int
    y1: int
    cm_per_px: float
    ref_x: int  #: probe position relative to (x0, y0)
    ref_y: int
    freq_khz: int


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> grey via BT.601 luma, as a monochrome machine would store it."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(rgb.astype(np.float32) @ w), 0, 255).astype(np.uint8)


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    if frame.ndim == 2:
        Image.fromarray(frame, "L").save(buf, "JPEG", quality=quality, optimize=False)
    else:
        Image.fromarray(frame, "RGB").save(buf, "JPEG", quality=quality, subsampling=1, optimize=False)
    return buf.getvalue()


def build_dataset(frames_rgb: np.ndarray, encoding: str, header: Header, region: Region | None,
                  jpeg_quality: int = 90) -> Dataset:
    """(n, H, W, 3) uint8 RGB frames -> a complete US (multi-frame) image dataset."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {sorted(ENCODINGS)}")
    syntax, photometric = ENCODINGS[encoding]
    n, rows, cols = frames_rgb.shape[:3]
    multi = n > 1
    mono = photometric == "MONOCHROME2"
    pixels = np.stack([to_gray(f) for f in frames_rgb]) if mono else frames_rgb

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_STORAGE if multi else US_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = header.sop_uid
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ECHOAVC_SYNTH"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = header.sop_uid
    ds.StudyDate = header.study_date
    ds.SeriesDate = header.study_date
    ds.ContentDate = header.study_date
    ds.AcquisitionDateTime = header.study_date + header.acquisition_time
    ds.StudyTime = header.study_time
    ds.SeriesTime = header.acquisition_time
    ds.ContentTime = header.acquisition_time
    ds.AccessionNumber = header.accession
    ds.Modality = "US"
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = header.institution
    ds.ReferringPhysicianName = header.referring
    ds.StationName = header.station
    ds.StudyDescription = "Adult Echo"
    ds.SeriesDescription = "Echo"
    ds.OperatorsName = header.operator
    ds.ManufacturerModelName = header.model
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.birth_date
    ds.PatientSex = header.sex
    ds.BodyPartExamined = "HEART"
    ds.HeartRate = header.heart_rate
    ds.DeviceSerialNumber = header.station[-6:]
    ds.SoftwareVersions = "synth-1.0"
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.StudyID = header.study_id
    ds.SeriesNumber = header.series_number
    ds.InstanceNumber = header.instance_number
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    if multi:
        ds.FrameTime = round(header.frame_time_ms, 3)
        ds.CineRate = int(round(1000.0 / header.frame_time_ms))
        ds.NumberOfFrames = n
        ds.FrameIncrementPointer = 0x00181063
    if region is not None:
        item = Dataset()
        item.RegionSpatialFormat = 1  # 2D
        item.RegionDataType = 1  # tissue
        item.RegionFlags = 0
        item.RegionLocationMinX0 = region.x0
        item.RegionLocationMinY0 = region.y0
        item.RegionLocationMaxX1 = region.x1
        item.RegionLocationMaxY1 = region.y1
        item.ReferencePixelX0 = region.ref_x
        item.ReferencePixelY0 = region.ref_y
        item.PhysicalUnitsXDirection = 3  # cm
        item.PhysicalUnitsYDirection = 3
        item.ReferencePixelPhysicalValueX = 0.0
        item.ReferencePixelPhysicalValueY = 0.0
        item.PhysicalDeltaX = float(region.cm_per_px)
        item.PhysicalDeltaY = float(region.cm_per_px)
        item.TransducerFrequency = region.freq_khz
        ds.SequenceOfUltrasoundRegions = Sequence([item])

    ds.SamplesPerPixel = 1 if mono else 3
    ds.PhotometricInterpretation = "MONOCHROME2" if mono else "RGB"
    if not mono:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0

    if syntax == JPEGBaseline8Bit:
        ds.PhotometricInterpretation = photometric
        encoded = [_jpeg(f, jpeg_quality) for f in pixels]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ratio = pixels.nbytes / max(sum(len(e) for e in encoded), 1)
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    elif syntax == RLELossless:
        ds.LossyImageCompression = "00"
        ds.compress(RLELossless, pixels if multi else pixels[0], encoding_plugin=_rle_plugin(),
                    generate_instance_uid=False)
    else:
        ds.LossyImageCompression = "00"
        ds.PixelData = np.ascontiguousarray(pixels if multi else pixels[0]).tobytes()
        ds["PixelData"].VR = "OB" if syntax != ImplicitVRLittleEndian else "OW"
    return ds


def _rle_plugin() -> str:
    try:
        import rle  # noqa: F401  (pylibjpeg-rle: fast)

        return "pylibjpeg"
    except ImportError:  # pragma: no cover
        return "pydicom"


def encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` via a temporary file and rename; returns hex SHA-256 of the bytes."""
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()
