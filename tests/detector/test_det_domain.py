"""Opt-in domain randomisation (DetectorSettings.domain_randomisation): off by default, image-only when on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from echoavc.detector.model import WeightsChoice
from echoavc.detector.train import ultralytics_args
from echoavc.settings import detector_preset


def _args(**kw):
    return ultralytics_args(detector_preset("cpu", **kw), Path("d.yaml"), Path("o"), "cpu", WeightsChoice(None, "x"))


def test_off_by_default_and_on_when_asked():
    assert detector_preset("cpu").domain_randomisation is False
    assert "augmentations" not in _args()
    on = _args(domain_randomisation=True)["augmentations"]
    assert len(on) >= 7


def test_transforms_change_pixels_never_boxes():
    import albumentations as A

    transforms = _args(domain_randomisation=True)["augmentations"]

    def image_only(t):  # spatial (box-moving) transforms are DualTransforms; a OneOf holds transforms
        return all(image_only(x) for x in t.transforms) if isinstance(t, A.BaseCompose) else \
            isinstance(t, A.ImageOnlyTransform)

    assert all(image_only(t) for t in transforms)
    img = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    compose = A.Compose(transforms, seed=1)
    outs = [compose(image=img)["image"] for _ in range(12)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, img) for o in outs) >= 6  # most draws change the picture


# ----------------------------------------------------------------------------- style from the user's own frames


def _ingest_folder(tmp_path, level: int, n: int = 3) -> Path:
    """A folder shaped like `echoavc ingest` output: manifest.csv listing standard frames of one grey level."""
    import cv2

    folder = tmp_path / f"ingested-{level}"
    (folder / "frames").mkdir(parents=True)
    rows = ["image_path"]
    rng = np.random.default_rng(level)
    for i in range(n):
        img = np.clip(rng.normal(level, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / "frames" / f"f{i}.png"), img)
        rows.append(f"frames/f{i}.png")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_style_from_restyles_frames_and_survives_ultralytics_serialisation(tmp_path):
    import albumentations as A

    bright = _ingest_folder(tmp_path, 180)
    assert "augmentations" not in _args()  # off by default
    transforms = _args(style_from=str(bright), style_p=1.0)["augmentations"]
    assert len(transforms) == 1 and isinstance(transforms[0], A.ImageOnlyTransform)  # never moves boxes
    # Ultralytics stores its run arguments with albumentations' to_dict and rebuilds them in each loader
    rebuilt = A.from_dict(A.to_dict(transforms[0]))
    dark = np.clip(np.random.default_rng(0).normal(40, 10, (192, 192, 3)), 0, 255).astype(np.uint8)
    for method, transform in (("histogram", rebuilt),
                              ("fourier", _args(style_from=str(bright), style_method="fourier", style_p=1.0)
                               ["augmentations"][0])):
        compose = A.Compose([transform], seed=2)
        outs = [compose(image=dark)["image"] for _ in range(4)]
        assert all(o.shape == dark.shape and o.dtype == np.uint8 for o in outs)
        assert all(o.mean() > dark.mean() + 40 for o in outs), method  # takes on the references' brightness


def test_style_from_wrong_folder_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from echoavc.cli import app
    from echoavc.detector.domain import style_reference_paths
    from echoavc.errors import EchoAVCError

    empty = tmp_path / "not-ingested"
    empty.mkdir()
    with pytest.raises(EchoAVCError, match="no manifest.csv"):
        style_reference_paths(empty)
    (empty / "manifest.csv").write_text("image_path\nframes/missing.png\n")
    with pytest.raises(EchoAVCError, match="lists no frame"):
        style_reference_paths(empty)
    with pytest.raises(EchoAVCError, match="style_method"):
        detector_preset("cpu", style_method="cyclegan")
    res = CliRunner().invoke(app, ["detector", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                   "--style-from", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nowhere" in res.output and "manifest.csv" in res.output, res.output
    assert not (tmp_path / "o").exists()
