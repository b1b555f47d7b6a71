"""Domain randomisation for detector training (opt-in: ``DetectorSettings.domain_randomisation``).

A detector trained on synthetic frames only meets real scanners with other grey maps, gains, speckle, resolutions,
colour maps and things drawn over the field. These albumentations transforms, applied on the fly by Ultralytics'
training loader (its ``augmentations`` argument) on top of its own mosaic/scale/translate/brightness, vary exactly
that and nothing spatial (the boxes stay as they are): intensity curves (gamma, brightness/contrast, CLAHE), blur,
speckle-like multiplicative noise, lower resolution, JPEG, colour-map swaps (tints, channel shifts, grey). Not
cut-outs: albumentations' CoarseDropout is a box-aware (spatial) transform, which would switch Ultralytics to its
box-transforming path. Measured with benchmarks/bench_sim2real.py (docs/synth.md, "Sim-to-real").
"""

from __future__ import annotations

import os


def domain_randomisation_transforms() -> list:
    """The albumentations transforms (a fresh list: Ultralytics composes and seeds them)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return [
        A.RandomGamma(gamma_limit=(60, 170), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.35, p=0.5),
        A.CLAHE(clip_limit=(1, 3), p=0.15),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.25),
        A.MultiplicativeNoise(multiplier=(0.75, 1.25), per_channel=False, elementwise=True, p=0.25),
        A.Downscale(scale_range=(0.4, 0.8), p=0.2),
        A.ImageCompression(quality_range=(40, 95), p=0.2),
        A.OneOf([A.ToSepia(), A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20), A.ToGray()], p=0.15),
    ]
