"""find_cone gives the cones it gave before issue 18's speed-up, on real and synthetic inputs.

tests/data/cones/expected.json holds, per case, the cone (or the refusal) that find_cone returned on main at
ddca463, before the finder was made faster; recorded with

    PYTHONPATH=OLD_CHECKOUT/src:tests:tests/cone python tests/cone/test_cone_regression.py --record

The cases: pydicom-data's ultrasound files (with and without their regions), the real development frames in
../shared/real-dev when that folder is there (they may not be copied into the repository), synthetic clips of
every geometry and layout of cone_synth, and inputs that must be refused or fall back to a flagged hull.
"""

from __future__ import annotations

import json
import sys
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from cone_synth import make_frames
from echoavc.cone import Cone, find_cone, mask_iou
from echoavc.errors import EchoAVCError

EXPECTED = Path(__file__).parents[1] / "data" / "cones" / "expected.json"
ROOT = Path(__file__).resolve().parents[2]
US_FILES = ("US1_UNCR.dcm", "US1_J2KR.dcm", "examples_ybr_color.dcm", "color3d_jpeg_baseline.dcm",
            "JPGLosslessP14SV1_1s_1f_8b.dcm")
GEOMETRIES = {
    "sector-75": dict(kind="sector", apex=(240, 20), angles=(-37.5, 37.5), radii=(0, 300)),
    "steered": dict(kind="sector", apex=(250, 25), angles=(-40, 30), radii=(0, 290)),
    "apex-above": dict(kind="sector", apex=(240, -150), angles=(-28, 28), radii=(0, 470)),
    "curved-array": dict(kind="sector", apex=(240, -80), angles=(-35, 35), radii=(120, 400)),
    "linear": dict(kind="rectangle", rect=(100, 30, 380, 320)),
    "us-region": dict(kind="sector", apex=(240, 20), angles=(-37.5, 37.5), radii=(0, 300), region=(70, 10, 409, 330)),
}
LAYOUTS = {"one-frame": dict(n_frames=1), "colour": dict(n_frames=6, colour=True),
           "dim-side": dict(n_frames=12, dim_side=True), "jpeg": dict(n_frames=6, jpeg=85)}


def real_dev() -> Path | None:
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "real-dev" / "dicom").is_dir():
            return base / "shared" / "real-dev"
    return None


def cases() -> list[str]:
    names = [f"pydicom:{n}:{how}" for n in US_FILES for how in ("regions", "image")]
    names += [f"synth:{g}:{lay}" for g in GEOMETRIES for lay in LAYOUTS]
    names += ["refused:blank", "refused:tiny", "refused:text-only", "hull:ring", "hull:down-triangle"]
    names += [f"real-dev:{n}" for n in ("08_a4ch-full.dcm", "29_plax-full-rv-ao.dcm", "34_psax-tv.dcm",
                                         "35_psax-av.dcm", "37_psax-lv-base.dcm", "38_psax-lv-mid.dcm",
                                         "39_psax-lv-apex.dcm", "45_subcostal-heart.dcm")]
    return names


@lru_cache(maxsize=None)
def case_input(name: str):
    """(frames, regions) of a case, as find_cone gets them from prepare_clip."""
    source, what, *how = name.split(":")
    if source in ("pydicom", "real-dev"):
        from echoavc.dicom.read import decode_frames, frame_indices, open_dicom, tissue_regions
        from echoavc.settings import ConeSettings

        if source == "pydicom":
            from testkit import shipped_file

            path = shipped_file(what)
        else:
            if real_dev() is None:
                pytest.skip("../shared/real-dev is not there")
            path = real_dev() / "dicom" / what
        clip = open_dicom(path.read_bytes(), str(path))
        kept = frame_indices(clip.n_frames, 1)
        n = min(len(kept), ConeSettings().sample_frames)
        idx = sorted({kept[int(round(i))] for i in np.linspace(0, len(kept) - 1, n)})
        frames = np.stack([f for _, f in decode_frames(clip, idx)])
        regions = tissue_regions(clip.dataset)
        return frames, (None if how == ["image"] else regions)
    if source == "synth":
        geom = GEOMETRIES[what]
        frames, _, _ = make_frames(geom, seed=zlib.crc32(name.encode()) % 1000, **LAYOUTS[how[0]])
        return frames, ([geom["region"]] if "region" in geom else None)
    if what == "blank":
        return np.zeros((4, 120, 160), np.uint8), None
    if what == "tiny":
        return make_frames(dict(kind="sector", apex=(240, 20), angles=(-20, 20), radii=(0, 70)), seed=4)[0], None
    if what == "text-only":
        frames = make_frames(GEOMETRIES["sector-75"], seed=5)[0]
        return np.where(frames == 230, frames, 0).astype(np.uint8), None
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    r = np.hypot(xx - 200, yy - 150)
    field = ((r > 60) & (r < 130)) if what == "ring" else ((yy > 30) & (np.abs(xx - 200) < (280 - yy) * 0.8))
    return (np.random.default_rng(0).rayleigh(60, (4, h, w)) * field).clip(0, 255).astype(np.uint8), None


def result(name: str):
    """The cone as a dict, or "refused: <message>"."""
    frames, regions = case_input(name)
    try:
        return find_cone(frames, regions).to_dict()
    except EchoAVCError as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("name", cases())
def test_the_same_cone_as_before(name):
    expected = json.loads(EXPECTED.read_text())[name]
    got = result(name)
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
        return
    frames, _ = case_input(name)
    shape = frames.shape[1:3]  # every case is a stack of frames
    old, new = Cone.from_dict(expected), Cone.from_dict(got)
    assert (new.kind, new.source, bool(new.flag)) == (old.kind, old.source, bool(old.flag))
    assert mask_iou(new.mask(shape), old.mask(shape)) >= 0.995
    if old.kind == "sector":
        assert np.hypot(*np.subtract(new.apex, old.apex)) <= 0.5
        assert np.allclose(new.angles, old.angles, atol=0.05)
        assert np.allclose(new.radii, old.radii, atol=0.5)


def record() -> None:
    """Write expected.json from the find_cone importable now (run it with the old checkout first on the path)."""
    out = {}
    for name in cases():
        try:
            out[name] = result(name)
        except pytest.skip.Exception:
            print(f"skipped {name}: no real-dev folder")
    EXPECTED.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(out)} cases -> {EXPECTED}")


if __name__ == "__main__" and "--record" in sys.argv:
    record()
