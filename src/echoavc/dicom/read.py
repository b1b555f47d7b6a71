"""Read DICOM files: header facts and frames as 8-bit images.

Every transfer syntax pydicom decodes with the pylibjpeg plugins, and every
colour model an ultrasound machine writes, comes out as uint8 (H, W) grey or
(H, W, 3) RGB. pydicom 3 already converts YBR to RGB, so no second conversion
is done here (that is what turns images green).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_voi_lut, iter_pixels
from pydicom.pixels.decoders.base import get_decoder

from echoavc.errors import EchoAVCError


@dataclass
class DicomClip:
    """One DICOM instance (a single frame or a clip) held in memory."""

    name: str  #: how to name it in messages (path, or zip!member)
    data: bytes  #: the file's bytes, so pixels decode without reading it again
    sha256: str  #: hex SHA-256 of the bytes: the join key of every later stage
    dataset: Dataset  #: header, parsed once (pixel data is decoded lazily)
    n_frames: int
    #: frame index -> why it cannot be decoded (found without decoding)
    bad_frames: dict[int, str] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return str(self.dataset.get("Modality", "") or "")

    @property
    def transfer_syntax(self) -> str:
        return str(self.dataset.file_meta.get("TransferSyntaxUID", ""))

    @property
    def photometric(self) -> str:
        return str(self.dataset.get("PhotometricInterpretation", "") or "")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_dicom(data: bytes, name: str | Path, sha256: str | None = None) -> DicomClip:
    """Parse a DICOM file's bytes; raise EchoAVCError naming ``name`` when it cannot be used. ``sha256``: the
    bytes' hash where the caller has it already (hashing a long clip again costs tens of milliseconds)."""
    name = str(name)
    if not data:
        raise EchoAVCError("empty file", name)
    with warnings.catch_warnings(record=True):  # pydicom's complaints about values: not the user's business
        warnings.simplefilter("always")
        ds = _parse(data, name)
    if "PixelData" not in ds and _ends_inside_an_element(data):
        raise EchoAVCError("truncated file (the data ends before the pixel data)", name)
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
        # a bare dataset without meta header is implicit VR little endian by definition
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise EchoAVCError("no pixel data", name)
    raw_frames = ds.get("NumberOfFrames", 1)
    try:
        n_frames = int(raw_frames) if raw_frames not in (None, "") else 1
    except (TypeError, ValueError) as exc:
        raise EchoAVCError(f"invalid NumberOfFrames {raw_frames!r}", name) from exc
    if n_frames < 1:
        raise EchoAVCError("zero frames", name)
    for attr in ("Rows", "Columns", "BitsAllocated"):
        if not ds.get(attr):
            raise EchoAVCError(f"missing or zero {attr}", name)
    ts = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise EchoAVCError(f"unsupported transfer syntax {ts.name} ({ts})", name) from exc
    if not decoder.is_available:
        raise EchoAVCError(
            f"transfer syntax {ts.name} needs a decoder that is not installed "
            f"({', '.join(decoder.missing_dependencies) or 'none available'})",
            name,
        )
    clip = DicomClip(name, data, sha256 or sha256_bytes(data), ds, n_frames)
    clip.bad_frames = _truncated_frames(ds, n_frames)
    return clip


#: Codestreams of these syntaxes end with an end-of-image marker (JPEG EOI, JPEG 2000 EOC: both FFD9).
_MARKER_TERMINATED = {
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
}


def _truncated_frames(ds: Dataset, n_frames: int) -> dict[int, str]:
    """Frames whose codestream is cut short: decoders often return garbage for them instead of failing."""
    if str(ds.file_meta.TransferSyntaxUID) not in _MARKER_TERMINATED:
        return {}
    bad = {}
    try:
        for i, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=n_frames)):
            if b"\xff\xd9" not in frame[-4:]:  # allow a pad byte (00 or FF) after the marker
                bad[i] = "compressed frame is truncated (no end-of-image marker)"
    except Exception as exc:
        return {0: f"encapsulated pixel data is corrupt ({_short(exc)})"}
    return bad


class _CutDetector(io.BytesIO):
    """The file's bytes; ``cut`` is set when a read gets some, but not all, of the bytes it asks for."""

    cut = False

    def read(self, size: int | None = -1) -> bytes:
        got = super().read(size)
        if size is not None and 0 < len(got) < size:
            self.cut = True
        return got


def _ends_inside_an_element(data: bytes) -> bool:
    """Whether parsing runs out of bytes inside an element (the file was cut short): pydicom keeps what it read,
    quietly or with a warning, so the structure of the reads tells, not the warning's text."""
    buf = _CutDetector(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pydicom.dcmread(buf, force=True)
        except Exception:  # noqa: BLE001  (a header that does not parse at all is reported by _parse)
            pass
    return buf.cut


def _parse(data: bytes, name: str) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        # files without the 128-byte preamble are still DICOM if they parse as such
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as exc:
            raise EchoAVCError(f"not a DICOM file ({type(exc).__name__})", name) from exc
        if "SOPClassUID" not in ds and "PixelData" not in ds:
            raise EchoAVCError("not a DICOM file", name)
        return ds
    except Exception as exc:
        raise EchoAVCError(f"unreadable DICOM header: {_short(exc)}", name) from exc


def frame_indices(n_frames: int, every_nth: int = 1) -> list[int]:
    if every_nth < 1:
        raise ValueError("every_nth must be >= 1")
    return list(range(0, n_frames, every_nth))


def decode_frames(clip: DicomClip, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, uint8 frame) for the given frame indices, in order."""
    ds = clip.dataset
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return
    if wanted[-1] >= clip.n_frames or wanted[0] < 0:
        raise EchoAVCError(f"frame index out of range 0..{clip.n_frames - 1}", clip.name)
    for index in wanted:
        if index in clip.bad_frames:
            raise EchoAVCError(f"frame {index}: {clip.bad_frames[index]}", clip.name)
    it = iter_pixels(io.BytesIO(clip.data), indices=wanted)
    for index in wanted:
        try:
            raw = next(it)
        except StopIteration:
            raise EchoAVCError(f"frame {index}: pixel data ends early (truncated file)", clip.name) from None
        except Exception as exc:
            raise EchoAVCError(f"frame {index}: cannot decode ({_short(exc)})", clip.name) from exc
        try:
            yield index, to_uint8(raw, ds)
        except EchoAVCError as exc:
            raise exc.at(clip.name)


def to_uint8(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """One decoded frame -> uint8 grey (H, W) or RGB (H, W, 3)."""
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        if rgb.dtype != np.uint8:
            # LUT entries are 16-bit words; 8-bit tables sit in the high byte
            rgb = (rgb >> 8).astype(np.uint8) if rgb.max() > 255 else rgb.astype(np.uint8)
        return np.ascontiguousarray(rgb)
    if arr.ndim == 3:  # RGB, or YBR already converted to RGB by pydicom
        if arr.dtype != np.uint8:
            bits = int(ds.get("BitsStored", 8))
            arr = (arr.astype(np.float32) * (255.0 / (2**bits - 1))).round().clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(arr)
    if pi not in {"MONOCHROME1", "MONOCHROME2"}:
        raise EchoAVCError(f"unsupported photometric interpretation {pi!r} for a single-channel frame")
    if arr.dtype == np.uint8 and pi == "MONOCHROME2":
        return arr
    grey = arr.astype(np.float64)
    if arr.dtype != np.uint8:
        bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            # the VOI transform maps onto the stored range, unsigned
            grey, signed = apply_voi_lut(arr, ds).astype(np.float64), False
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        grey = (grey - lo) * (255.0 / max(hi - lo, 1))
    if pi == "MONOCHROME1":  # bright means low: invert so tissue is bright as in MONOCHROME2
        grey = 255.0 - grey
    return grey.round().clip(0, 255).astype(np.uint8)


def tissue_regions(ds: Dataset) -> list[tuple[int, int, int, int]]:
    """2-D tissue rectangles (x0, y0, x1, y1) of SequenceOfUltrasoundRegions, unvalidated."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            if int(item.get("RegionSpatialFormat", 0)) != 1:  # 1 = 2D image
                continue
            if int(item.get("RegionDataType", 1)) not in (1, 2):  # tissue, colour flow
                continue
            out.append(
                (int(item.RegionLocationMinX0), int(item.RegionLocationMinY0),
                 int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1))
            )
        except (AttributeError, TypeError, ValueError):
            continue  # a malformed region is ignored, the image decides
    return out


def region_spacing_mm(ds: Dataset, point: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Pixel spacing (x, y) in mm from the ultrasound region containing ``point`` (else the largest)."""
    best, best_area = None, -1
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            if int(item.get("PhysicalUnitsXDirection", 0)) != 3 or int(item.get("PhysicalUnitsYDirection", 0)) != 3:
                continue  # 3 = cm
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
            dx, dy = float(item.PhysicalDeltaX) * 10.0, float(item.PhysicalDeltaY) * 10.0
        except (AttributeError, TypeError, ValueError):
            continue
        if dx <= 0 or dy <= 0:
            continue
        inside = point is not None and x0 <= point[0] <= x1 and y0 <= point[1] <= y1
        area = (x1 - x0) * (y1 - y0) + (10**12 if inside else 0)
        if area > best_area:
            best, best_area = (dx, dy), area
    return best


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
