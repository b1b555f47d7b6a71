"""Helpers shared by test modules (import as ``from testkit import ...``; conftest files are not modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def shipped_file(name: str) -> Path:
    """A file shipped with pydicom or pydicom-data, by exact name (never a glob: that goes online)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not installed (pip install pydicom-data)")
    return Path(path)


#: Every ultrasound file shipped in pydicom and pydicom-data (Modality US), by name.
ULTRASOUND_FILES = [
    "ExplVR_BigEnd.dcm", "examples_jpeg2k.dcm", "examples_palette.dcm", "examples_rgb_color.dcm",
    "examples_ybr_color.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "OBXXXX1A.dcm", "OBXXXX1A_2frame.dcm",
    "OBXXXX1A_expb.dcm", "OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_rle_2frame.dcm",
    "US1_J2KI.dcm", "US1_J2KR.dcm", "US1_UNCI.dcm", "US1_UNCR.dcm", "color-pl.dcm", "color-px.dcm",
    "color3d_jpeg_baseline.dcm", "gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm",
]
