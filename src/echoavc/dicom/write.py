"""Write de-identified DICOM: the kept frames, masked, uncompressed, in Explicit VR Little Endian.

The header goes through :func:`echoavc.dicom.deid.deidentify_dataset` (Basic Profile, Modified Dates Option);
what describes the pixels is then made true of the new pixels (8-bit MONOCHROME2 or RGB, display-ready), and
the clip's timing is kept for the frames written, so a viewer still plays it at its own speed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from echoavc.dicom.deid import deidentify_dataset, keyed_uid
from echoavc.dicom.read import DicomClip
from echoavc.files import atomic_write_bytes

#: attributes that describe stored pixels the writer replaces: palettes (now RGB), value ranges and
#: VOI/modality transforms (the frames are already display-ready 8-bit)
_PIXEL_DESCRIPTION = {
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "AlphaPaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "AlphaPaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
    "SegmentedAlphaPaletteColorLookupTableData", "PaletteColorLookupTableUID",
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction", "VOILUTSequence",
    "ModalityLUTSequence", "RescaleIntercept", "RescaleSlope", "RescaleType",
}
#: widths of the words of binary VRs whose byte order follows the transfer syntax
_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def write_deidentified_dicom(path: Path, clip: DicomClip, frames: list[np.ndarray], secret: bytes, ids: dict,
                             kept: Sequence[int]) -> None:
    """The kept frames (masked, original size), under the Basic Profile with keyed pseudonyms and shifted dates."""
    ds = pydicom.dcmread(io.BytesIO(clip.data))
    big_endian = ds.original_encoding[1] is False
    deidentify_dataset(ds, SecretKey(secret), ids["patient_id"])
    single_frame_source = "NumberOfFrames" not in ds
    set_pixels(ds, np.stack(frames))
    if len(frames) == 1 and single_frame_source:
        del ds.NumberOfFrames  # the single-frame US Image IOD has none (with it, a frame pointer is required)
    keep_timing(ds, list(kept), clip.n_frames)
    if big_endian:
        words_to_little_endian(ds)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta  # PS3.15 E.1.1 (7): meta header and preamble describe us, not the source's archive
    ds.preamble = None
    buf = io.BytesIO()
    # dcmwrite, not save_as: save_as refuses to change byte order, and big-endian sources must become little
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    atomic_write_bytes(path, buf.getvalue())


def set_pixels(ds: Dataset, arr: np.ndarray) -> None:
    """Replace the pixel data by ``arr`` (N, H, W) grey or (N, H, W, 3) RGB uint8, and what describes it."""
    colour = arr.ndim == 4
    for keyword in _PIXEL_DESCRIPTION:
        if keyword in ds:
            delattr(ds, keyword)
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = int(arr.shape[0])
    ds.PixelData = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    ds["PixelData"].VR = "OB"


def keep_timing(ds: Dataset, kept: list[int], n_source: int) -> None:
    """Frame timing for the frames written (``kept`` of ``n_source``): Frame Time or Frame Time Vector, frame
    rates, and a Frame Increment Pointer that names what is present (Type 1C of the US Image module)."""
    step = kept[1] - kept[0] if len(kept) > 1 else 1
    if "FrameTimeVector" in ds:
        vector = [float(v) for v in ds.FrameTimeVector]
        if len(vector) == n_source:
            # the vector holds each frame's time since the previous one: sum over the frames left out
            elapsed = np.cumsum([0.0] + vector[1:])
            ds.FrameTimeVector = [0.0] + [float(elapsed[b] - elapsed[a]) for a, b in zip(kept, kept[1:])]
        else:
            del ds.FrameTimeVector  # does not describe this clip: it cannot be trusted for the frames kept
    if step > 1 and ds.get("FrameTime") not in (None, ""):
        ds.FrameTime = f"{float(ds.FrameTime) * step:.3f}"
    for rate in ("CineRate", "RecommendedDisplayFrameRate"):
        if step > 1 and ds.get(rate) not in (None, ""):
            setattr(ds, rate, max(1, round(float(ds.get(rate)) / step)))
    if "NumberOfFrames" not in ds:
        return
    present = [kw for kw in ("FrameTime", "FrameTimeVector") if ds.get(kw) not in (None, "")]
    pointer = ds.get("FrameIncrementPointer")
    names = [pydicom.datadict.keyword_for_tag(t) for t in (pointer if isinstance(pointer, list) else [pointer])
             if t is not None]
    if present and not any(n in present for n in names):
        ds.FrameIncrementPointer = pydicom.tag.Tag(present[0])


def words_to_little_endian(ds: Dataset) -> None:
    """Byte-swap OW/OF/OL/OD/OV values read from a big-endian file (pydicom keeps their bytes as read);
    UN values cannot be swapped without knowing their VR and are removed."""

    def swap(dataset: Dataset, element) -> None:
        width = _WORD.get(element.VR)
        if width and isinstance(element.value, bytes) and element.tag != 0x7FE00010:
            element.value = np.frombuffer(element.value, f">u{width}").astype(f"<u{width}").tobytes()
        elif element.VR == "UN":
            del dataset[element.tag]

    ds.walk(swap)


class SecretKey:
    """The pseudonym side of PseudonymKey, for workers that hold only the secret."""

    def __init__(self, secret: bytes):
        self.secret = secret

    def uid(self, value: str) -> str:
        return keyed_uid(self.secret, value)
