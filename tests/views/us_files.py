"""Ultrasound DICOM files built with pydicom for the view tests: any frames, any Sequence of Ultrasound Regions."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).parents[1] / "cone"))
from cone_synth import make_frames  # noqa: E402

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def region(x0, y0, x1, y1, spatial: int, data_type: int) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = spatial
    item.RegionDataType = data_type
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    return item


def us_file(frames: np.ndarray, regions: list[Dataset] | None, study: str = "1.2.3.4") -> bytes:
    """Bytes of an Ultrasound Multi-frame Image (grey or RGB uint8 frames), Explicit VR Little Endian."""
    frames = np.ascontiguousarray(frames, np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "US", study, generate_uid()
    ds.PatientID = "VIEWTEST"
    n, h, w = frames.shape[:3]
    ds.NumberOfFrames, ds.Rows, ds.Columns = n, h, w
    ds.FrameTime = 40.0
    ds.FrameIncrementPointer = 0x00181063
    rgb = frames.ndim == 4
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if regions:
        ds.SequenceOfUltrasoundRegions = Sequence(regions)
    ds.PixelData = frames.tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def sector_frames(shape=(300, 400), n=4, seed=0, apex=None) -> np.ndarray:
    """Grey frames with a sector field (cone_synth), no marks."""
    h, w = shape
    geom = {"kind": "sector", "apex": apex or (w / 2, 10), "angles": (-38, 38), "radii": (8, h * 0.9)}
    frames, _, _ = make_frames(geom, shape, n_frames=n, seed=seed, overlays=False)
    return frames


def m_mode_strip(h: int, w: int, n: int, seed: int = 1) -> np.ndarray:
    """(n, h, w) grey: horizontal bands that wave over time, as an M-mode trace looks."""
    rng = np.random.default_rng(seed)
    y = np.arange(h)[:, None]
    x = np.arange(w)[None, :]
    out = []
    for f in range(n):
        walls = 40 + 60 * (np.sin(y / 9.0 + np.sin(x / 25.0 + f) * 2) > 0.3)
        out.append(np.clip(walls + rng.normal(0, 12, (h, w)), 0, 255))
    return np.stack(out).astype(np.uint8)
