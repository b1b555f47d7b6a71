"""Write de-identified DICOM: the kept frames, masked, uncompressed, under the Basic Profile."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from echoavc.dicom.deid import deidentify_dataset, keyed_uid
from echoavc.dicom.read import DicomClip
from echoavc.files import atomic_write_bytes


def write_deidentified_dicom(path: Path, clip: DicomClip, frames: list[np.ndarray], secret: bytes, ids: dict,
                             kept: Sequence[int]) -> None:
    """The kept frames, masked, uncompressed, under the Basic Profile with keyed pseudonyms."""
    key = SecretKey(secret)
    ds = pydicom.dcmread(io.BytesIO(clip.data))
    deidentify_dataset(ds, key, ids["patient_id"])
    arr = np.stack(frames)
    colour = arr.ndim == 4
    for tag in list(ds.keys()):
        kw = pydicom.datadict.keyword_for_tag(tag)
        if kw.endswith(("PaletteColorLookupTableDescriptor", "PaletteColorLookupTableData",
                        "PaletteColorLookupTableUID")) or kw in {"FrameTimeVector"}:
            del ds[tag]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = len(frames)
    if "FrameTime" in ds and len(kept) > 1:
        ds.FrameTime = f"{float(ds.FrameTime) * (kept[1] - kept[0]):.3f}"
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    atomic_write_bytes(path, buf.getvalue())


class SecretKey:
    """The pseudonym side of PseudonymKey, for workers that hold only the secret."""

    def __init__(self, secret: bytes):
        self.secret = secret

    def uid(self, value: str) -> str:
        return keyed_uid(self.secret, value)
