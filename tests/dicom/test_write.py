"""De-identified DICOM output (``ingest --write-dicom``): little endian whatever the source, frames and the
attributes a viewer needs kept, and no dciodvfy error that the source does not already have."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from testkit import ULTRASOUND_FILES, shipped_file
from echoavc.dicom.write import keep_timing, words_to_little_endian
from echoavc.ingest import ingest
from echoavc.settings import IngestSettings

#: the big-endian ultrasound files shipped in pydicom and pydicom-data, with their little-endian twin if any
BIG_ENDIAN = {"ExplVR_BigEnd.dcm": None, "OBXXXX1A_expb.dcm": "OBXXXX1A.dcm",
              "OBXXXX1A_expb_2frame.dcm": "OBXXXX1A_2frame.dcm", "gdcm-US-ALOKA-16_big.dcm": "gdcm-US-ALOKA-16.dcm"}


def write_one(name: str, root: Path, key: Path, **settings) -> tuple[Path, Path]:
    """Ingest one shipped file with --write-dicom; return (source, de-identified DICOM)."""
    src = shipped_file(name)
    out = root / name
    report = ingest([src], out, key, IngestSettings(write_dicom=True, **settings), progress=False)
    assert not report.failures, report.failures
    [dcm] = list((out / "dicom").rglob("*.dcm"))
    return src, dcm


def test_the_big_endian_list_is_every_big_endian_ultrasound_file():
    found = {n for n in ULTRASOUND_FILES
             if pydicom.dcmread(shipped_file(n), stop_before_pixels=True).file_meta.TransferSyntaxUID
             == ExplicitVRBigEndian}
    assert found == set(BIG_ENDIAN)


@pytest.mark.parametrize("name", sorted(BIG_ENDIAN))
def test_big_endian_sources_are_written_little_endian(name, tmp_path, key_path):
    src, dcm = write_one(name, tmp_path, key_path)
    ds = pydicom.dcmread(dcm)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    source = pydicom.dcmread(src)
    assert (ds.Rows, ds.Columns) == (source.Rows, source.Columns)
    if "SequenceOfUltrasoundRegions" in source:  # numbers decoded from big endian, written back little
        for a, b in zip(source.SequenceOfUltrasoundRegions, ds.SequenceOfUltrasoundRegions, strict=True):
            assert [(e.tag, e.value) for e in a] == [(e.tag, e.value) for e in b]
    frames = ds.pixel_array.reshape(int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns, -1)
    assert frames.max() > 100 and frames.std() > 5  # an image, not a blank sheet
    twin = BIG_ENDIAN[name]
    if twin:  # the same image stored little endian: identical pixels out
        _, twin_dcm = write_one(twin, tmp_path, key_path)
        assert np.array_equal(pydicom.dcmread(twin_dcm).pixel_array, ds.pixel_array)


def test_a_clip_keeps_what_a_viewer_needs(tmp_path, key_path):
    """Frame time (for every 2nd frame: twice the source's), a frame increment pointer naming it, regions with
    their physical units and deltas, and a photometric interpretation true of the pixels written."""
    src, dcm = write_one("examples_ybr_color.dcm", tmp_path, key_path, every_nth=2)
    source, ds = pydicom.dcmread(src), pydicom.dcmread(dcm)
    assert int(ds.NumberOfFrames) == 15
    assert float(ds.FrameTime) == pytest.approx(2 * float(source.FrameTime))
    assert ds.FrameIncrementPointer == 0x00181063
    region, original = ds.SequenceOfUltrasoundRegions[0], source.SequenceOfUltrasoundRegions[0]
    for kw in ("PhysicalUnitsXDirection", "PhysicalUnitsYDirection", "PhysicalDeltaX", "PhysicalDeltaY",
               "RegionLocationMinX0", "RegionLocationMaxY1"):
        assert region[kw].value == original[kw].value
    arr = ds.pixel_array
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel) == (("RGB", 3) if arr.ndim == 4 else ("MONOCHROME2", 1))


def test_keep_timing_sums_the_frame_time_vector_over_frames_left_out():
    ds = Dataset()
    ds.NumberOfFrames = 3
    ds.FrameTimeVector = [0, 10, 20, 30, 40, 50]
    ds.FrameTime = "10"
    ds.FrameIncrementPointer = 0x00181063
    keep_timing(ds, [0, 2, 4], 6)
    assert list(ds.FrameTimeVector) == [0, 30, 70]
    assert float(ds.FrameTime) == 20
    assert ds.FrameIncrementPointer == 0x00181063  # names something present: left alone
    del ds.FrameTime
    keep_timing(ds, [0, 1, 2], 3)
    assert ds.FrameIncrementPointer == 0x00181065  # now the vector is all there is


def test_keep_timing_drops_a_vector_that_does_not_fit_the_clip():
    ds = Dataset()
    ds.NumberOfFrames = 2
    ds.FrameTimeVector = [0, 10]
    ds.FrameTime = "33.3"
    ds.FrameIncrementPointer = 0x00181065
    keep_timing(ds, [0, 2], 4)
    assert "FrameTimeVector" not in ds and ds.FrameIncrementPointer == 0x00181063


def test_words_read_big_endian_are_swapped_and_un_values_dropped():
    ds = Dataset()
    ds.add_new(0x00660040, "OW", b"\x01\x02\x03\x04")   # Long Primitive Point Index List-like words
    ds.add_new(0x00660016, "OF", b"\x01\x02\x03\x04")
    ds[0x77770010] = DataElement(0x77770010, "UN", b"\x01\x02")  # a standard group element unknown here
    words_to_little_endian(ds)
    assert ds[0x00660040].value == b"\x02\x01\x04\x03" and ds[0x00660016].value == b"\x04\x03\x02\x01"
    assert 0x77770010 not in ds


# ---------------------------------------------------------------- dciodvfy


def _is_ultrasound(name: str) -> bool:
    ds = pydicom.dcmread(shipped_file(name), stop_before_pixels=True)
    return ds.get("Modality") == "US" or "Ultrasound" in pydicom.uid.UID(str(ds.get("SOPClassUID", ""))).name


def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's errors for a file, with values, UIDs, item numbers and element paths taken out, so that a
    changed value (a shifted date, a keyed UID) or a removed nesting does not count as a different error."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    found = set()
    for line in (run.stdout + run.stderr).splitlines():
        if not line.startswith("Error"):
            continue
        line = re.sub(r"= <[^>]*>?", "= <>", line)          # values (a long value runs past the line)
        line = re.sub(r"\"[^\"]*\"", '""', line)             # quoted UIDs
        line = re.sub(r"= '.' \(0x[0-9a-f]+\)", "", line)   # the offending character
        line = re.sub(r"\[\d+\]", "", line)                  # value and item numbers
        line = re.sub(r"</[^>]*/([^/>]+)>", r"</\1>", line)  # element paths: the element alone
        found.add(" ".join(line.split()))
    return found


def test_every_shipped_ultrasound_file_is_checked():
    assert all(_is_ultrasound(n) for n in ULTRASOUND_FILES)


@pytest.mark.parametrize("name", ULTRASOUND_FILES)
def test_dciodvfy_finds_no_error_the_source_does_not_have(name, tmp_path, key_path):
    assert shutil.which("dciodvfy"), "dciodvfy is not installed (Debian/Ubuntu: apt-get install dicom3tools)"
    src, dcm = write_one(name, tmp_path, key_path)
    before, after = dciodvfy_errors(src), dciodvfy_errors(dcm)
    assert not after - before, f"{name}: new errors {sorted(after - before)}"
