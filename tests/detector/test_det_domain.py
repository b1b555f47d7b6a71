"""Opt-in domain randomisation (DetectorSettings.domain_randomisation): off by default, image-only when on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
