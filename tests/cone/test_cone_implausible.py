"""A fallback hull that cannot be the field is flagged, in the manifest and on the QC picture.

Seen on a vendor's colour file (YBR, RLE, planar) whose field was almost empty: the convex hull ran from a
bar on the image's left edge to a small arc of echo and the clip was cut to it without a word. Here the same
picture is made synthetically: a grey bar on the left edge, a trace along the bottom joined to it, a small arc.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.uid import RLELossless, generate_uid

from echoavc.cone import find_cone
from echoavc.cone.detect import hull_doubts
from echoavc.ingest import ingest
from echoavc.settings import IngestSettings

H, W = 480, 640


def nearly_empty_field(n: int = 6, seed: int = 0) -> np.ndarray:
    """RGB frames (n, H, W, 3): all the field shows is a left-edge bar, a trace joined to it and a small arc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    bar = (xx < 18) & (yy > 40) & (yy < 440)
    trace = (yy > 420) & (yy < 438) & (xx < 420)
    r = np.hypot(xx - 470, yy - 250)
    arc = (r > 150) & (r < 200) & (np.abs(np.degrees(np.arctan2(xx - 470, yy - 250))) < 25)
    lit = bar | trace | arc
    grey = [(rng.rayleigh(50, (H, W)) * lit + 30 * lit).clip(0, 255).astype(np.uint8) for _ in range(n)]
    return np.stack([np.repeat(g[..., None], 3, axis=2) for g in grey])


def ybr_rle_file(path, frames: np.ndarray) -> None:
    """A multi-frame US file in YBR_FULL, RLE Lossless (RLE stores each colour plane apart)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "PAT-EMPTY", "Empty^Field", "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames = frames.shape[1], frames.shape[2], len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL", 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.compress(RLELossless, convert_color_space(frames, "RGB", "YBR_FULL"), generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def test_hull_from_the_border_to_a_small_arc_is_flagged():
    cone = find_cone(nearly_empty_field())
    assert cone.kind == "hull" and cone.source == "fallback"
    assert cone.flag.startswith("IMPLAUSIBLE field")
    assert "left border" in cone.flag and "dark" in cone.flag


def test_a_believable_hull_gets_no_doubt():
    yy, xx = np.mgrid[0:H, 0:W]
    blob = (np.hypot(xx - 320, yy - 240) < 150)
    hull = cv2.convexHull(np.argwhere(blob)[:, ::-1].astype(np.int32))
    assert hull_doubts(hull, blob, (H, W)) == []
    assert any("dark" in d for d in hull_doubts(hull, blob & (xx < 240), (H, W)))


def test_ingest_flags_the_file_in_the_manifest_and_on_the_qc_picture(tmp_path):
    src = tmp_path / "in" / "empty_field.dcm"
    src.parent.mkdir()
    ybr_rle_file(src, nearly_empty_field())
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    assert ds.file_meta.TransferSyntaxUID == RLELossless and ds.PhotometricInterpretation == "YBR_FULL"
    out = tmp_path / "out"
    rep = ingest([src.parent], out, tmp_path / "key", IngestSettings(qc=True), progress=False)
    assert rep.failed == 0
    m = pd.read_csv(rep.manifest, keep_default_na=False)
    assert set(m.cone_source) == {"fallback"}
    assert all(f.startswith("IMPLAUSIBLE field") for f in m.cone_flag)
    assert any("IMPLAUSIBLE" in w for _, w in rep.warnings)
    (qc,) = list((out / "qc").rglob("*.png"))
    picture = cv2.imread(str(qc))
    # the flag is written on the picture: a red banner across its top, and the outline drawn in red
    banner = picture[:20, : picture.shape[1] // 2]
    red = (banner[..., 2] > 180) & (banner[..., 1] < 80) & (banner[..., 0] < 80)
    assert red.mean() > 0.5


@pytest.mark.parametrize("seed", [1, 2])
def test_qc_picture_of_a_good_field_has_no_banner(tmp_path, seed):
    from cone_synth import make_frames

    sector = dict(kind="sector", apex=(240, 30), angles=(-37.5, 37.5), radii=(0, 300))
    frames, _, _ = make_frames(sector, seed=seed, colour=True)
    rgb = np.repeat(frames[..., None], 3, axis=3) if frames.ndim == 3 else frames
    src = tmp_path / "in" / "good.dcm"
    src.parent.mkdir()
    ybr_rle_file(src, rgb)
    rep = ingest([src.parent], tmp_path / "out", tmp_path / "key", IngestSettings(qc=True), progress=False)
    assert rep.failed == 0
    (qc,) = list((tmp_path / "out" / "qc").rglob("*.png"))
    picture = cv2.imread(str(qc))
    banner = picture[:20, : picture.shape[1] // 2]
    assert ((banner[..., 2] > 180) & (banner[..., 1] < 80) & (banner[..., 0] < 80)).mean() < 0.05

