"""Augmentation: the paper's four techniques as named presets, Table 1's seven experiments, and an online
alternative. numpy in, numpy out; randomness only through an explicit seed or ``np.random.Generator``.

Techniques (paper section 2.4, imgaug values; two variants per image each, 61 -> 183):

===============  ==========================================  ===========================
technique        variants                                    albumentations
===============  ==========================================  ===========================
``translation``  +20% and -20% of the side, both axes        ``Affine(translate_percent)``
``zoom``         x0.5 and x2 about the centre                ``Affine(scale)``
``rotation``     +10 and -10 degrees about the centre        ``Affine(rotate)``
``gamma``        gamma 0.5 and 1.2 (out = in ** gamma)       ``RandomGamma``
===============  ==========================================  ===========================

A geometric variant moves the valve box with the image (``bbox_params``; rotation uses the
box enclosing the rotated corners, so it still encloses the valve). A variant whose valve box
leaves the image is rejected and reported, never kept with a clipped box.

Augmentation belongs to the training part only, after the split: :mod:`echoavc.dataset.folders`
calls it there and nowhere else (except the explicitly leaky paper protocol).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.settings import AugmentSettings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

TECHNIQUES = ("translation", "zoom", "rotation", "gamma")
#: Table 1's experiments, by name.
EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "original": (),
    "zoom": ("zoom",),
    "translation": ("translation",),
    "rotation": ("rotation",),
    "gamma": ("gamma",),
    "all": ("zoom", "translation", "rotation", "gamma"),
    "translation+rotation": ("translation", "rotation"),
}
#: Table 1's experiment numbers -> names (paper: dataset sizes 61, 183 x4, 549, 305).
TABLE1 = {1: "original", 2: "zoom", 3: "translation", 4: "rotation", 5: "gamma", 6: "all", 7: "translation+rotation"}
ONLINE = "online"


def parse_augmentation(spec: str | int | None) -> tuple[str, ...] | str:
    """An experiment name or number (``rotation``, ``4``, ``table1-4``), ``+``-joined techniques, ``none``, or
    ``online``. Returns the techniques, or ``"online"``."""
    if spec is None:
        return ()
    s = str(spec).strip().lower()
    if s in ("", "none", "original"):
        return ()
    if s == ONLINE:
        return ONLINE
    s = s.removeprefix("table1-").removeprefix("exp")
    if s.isdigit():
        if int(s) not in TABLE1:
            raise EchoAVCError(f"Table 1 has experiments 1-7, not {s}")
        return EXPERIMENTS[TABLE1[int(s)]]
    if s in EXPERIMENTS:
        return EXPERIMENTS[s]
    parts = tuple(p.strip() for p in s.split("+") if p.strip())
    bad = [p for p in parts if p not in TECHNIQUES]
    if bad:
        raise EchoAVCError(f"unknown augmentation {spec!r}: use one of {', '.join(EXPERIMENTS)}, 1-7, online, or "
                           f"techniques joined by '+' ({', '.join(TECHNIQUES)})")
    return tuple(dict.fromkeys(parts))


def augmentation_name(techniques: tuple[str, ...] | str) -> str:
    if techniques == ONLINE:
        return ONLINE
    for name, t in EXPERIMENTS.items():
        if set(t) == set(techniques):
            return name
    return "+".join(techniques)


@dataclass(frozen=True)
class Variant:
    """One fixed augmentation: a technique and its value."""

    technique: str
    value: float

    @property
    def name(self) -> str:
        v = f"{self.value:+g}" if self.technique in ("translation", "rotation") else f"{self.value:g}"
        return f"{self.technique}{v}"


def variants(techniques: tuple[str, ...], settings: AugmentSettings | None = None) -> list[Variant]:
    """The paper's fixed variants for ``techniques`` (two each by default)."""
    s = settings or AugmentSettings()
    values = {"translation": s.translation, "zoom": s.zoom, "rotation": s.rotation_deg, "gamma": s.gamma}
    return [Variant(t, float(v)) for t in TECHNIQUES if t in techniques for v in values[t]]


def _transform(v: Variant):
    import albumentations as A

    if v.technique == "translation":
        return A.Affine(translate_percent={"x": (v.value, v.value), "y": (v.value, v.value)}, p=1.0, border_mode=0,
                        fill=0)
    if v.technique == "zoom":
        return A.Affine(scale=(v.value, v.value), p=1.0, border_mode=0, fill=0)
    if v.technique == "rotation":
        return A.Affine(rotate=(v.value, v.value), p=1.0, border_mode=0, fill=0, rotate_method="largest_box")
    if v.technique == "gamma":
        g = v.value * 100
        return A.RandomGamma(gamma_limit=(g, g), p=1.0)
    raise EchoAVCError(f"unknown technique {v.technique!r}")


@dataclass
class Augmented:
    """An augmented image, its valve box (standard pixels; None for a background image) and whether it is kept."""

    image: np.ndarray | None
    box: tuple[float, float, float, float] | None
    name: str
    ok: bool = True
    reason: str = ""


def run_pipeline(transforms: list, image: np.ndarray, box, seed: int | None = None,
                 tolerance: float = 0.5) -> tuple[np.ndarray, tuple | None, str]:
    """Apply albumentations ``transforms`` to an image and its box; returns (image, box, reason). ``reason`` is
    non-empty when the valve box leaves the image (then ``box`` is the clipped one, for drawing only)."""
    import albumentations as A

    h, w = image.shape[:2]
    if box is None:
        out = A.Compose(transforms, seed=seed)(image=image)
        return out["image"], None, ""
    with warnings.catch_warnings():  # gamma alone moves no box: albumentations warns about that
        warnings.simplefilter("ignore", UserWarning)
        return _run_with_box(A, transforms, image, box, seed, tolerance, w, h)


def _run_with_box(A, transforms, image, box, seed, tolerance, w, h):
    x1, y1, x2, y2 = (float(v) for v in box)
    # the corners as keypoints (albumentations keypoints use pixel centres: shift by half a pixel)
    corners = np.array([(x1, y1), (x2, y1), (x1, y2), (x2, y2)], dtype=np.float64) - 0.5
    comp = A.Compose(transforms, seed=seed,
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
                     keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))
    out = comp(image=image, bboxes=np.array([[x1, y1, x2, y2]], dtype=np.float64), labels=[0], keypoints=corners)
    kp = np.asarray(out["keypoints"], dtype=np.float64)[:, :2] + 0.5
    reason = ""
    if (kp[:, 0].min() < -tolerance or kp[:, 1].min() < -tolerance or kp[:, 0].max() > w + tolerance
            or kp[:, 1].max() > h + tolerance):
        reason = (f"valve leaves the image: box corners reach ({kp[:, 0].min():.1f}, {kp[:, 1].min():.1f}) - "
                  f"({kp[:, 0].max():.1f}, {kp[:, 1].max():.1f}) in a {w}x{h} image")
    bbs = np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4)
    if len(bbs) != 1:
        return out["image"], None, reason or "valve box lost by the transform"
    b = bbs[0]
    return out["image"], (float(b[0]), float(b[1]), float(b[2]), float(b[3])), reason


def apply_variant(image: np.ndarray, box, variant: Variant, settings: AugmentSettings | None = None) -> Augmented:
    s = settings or AugmentSettings()
    img, b, reason = run_pipeline([_transform(variant)], image, box, tolerance=s.inside_tolerance_px)
    return Augmented(img, b, variant.name, ok=not reason, reason=reason)


def augment(image: np.ndarray, box, techniques: tuple[str, ...],
            settings: AugmentSettings | None = None) -> list[Augmented]:
    """Every fixed variant of ``techniques`` for one image (accepted and rejected; check ``.ok``)."""
    return [apply_variant(image, box, v, settings) for v in variants(techniques, settings)]


class OnlineAugmenter:
    """Random augmentation drawn afresh each call, within the paper's ranges: translation up to +-0.2 of the side
    per axis, zoom 0.5-2 (as likely in as out), rotation +-10 degrees, gamma 0.5-1.2. A draw whose valve
    leaves the image is redrawn (up to ``online_tries`` times, then the image is returned unchanged)."""

    def __init__(self, seed: int | np.random.Generator = 0, settings: AugmentSettings | None = None,
                 p_affine: float = 0.9, p_gamma: float = 0.5):
        import albumentations as A

        self.settings = s = settings or AugmentSettings()
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        t = max(abs(v) for v in s.translation)
        r = max(abs(v) for v in s.rotation_deg)
        self.transforms = [
            A.Affine(translate_percent={"x": (-t, t), "y": (-t, t)}, scale=(min(s.zoom), max(s.zoom)),
                     balanced_scale=True, rotate=(-r, r), p=p_affine, border_mode=0, fill=0,
                     rotate_method="largest_box"),
            A.RandomGamma(gamma_limit=(min(s.gamma) * 100, max(s.gamma) * 100), p=p_gamma),
        ]
        self.rejected = 0

    def __call__(self, image: np.ndarray, box=None) -> Augmented:
        for _ in range(max(1, self.settings.online_tries)):
            seed = int(self.rng.integers(2**31 - 1))
            img, b, reason = run_pipeline(self.transforms, image, box, seed, self.settings.inside_tolerance_px)
            if not reason:
                return Augmented(img, b, "online")
            self.rejected += 1
        return Augmented(image.copy(), tuple(box) if box is not None else None, "online-unchanged")

    @staticmethod
    def ultralytics_args(settings: AugmentSettings | None = None) -> dict:
        """The nearest Ultralytics training arguments, for detector training with online augmentation."""
        s = settings or AugmentSettings()
        return {"degrees": max(abs(v) for v in s.rotation_deg), "translate": max(abs(v) for v in s.translation),
                "scale": 1.0 - min(s.zoom), "fliplr": 0.0, "flipud": 0.0, "mosaic": 0.0, "mixup": 0.0,
                "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.4, "shear": 0.0, "perspective": 0.0}


# ---------------------------------------------------------------- balancing (training part only)


def duplicate_minority(labels: list[int], rng: np.random.Generator) -> list[int]:
    """Indices to add (duplicates of the minority class, drawn without replacement while possible) so both
    classes are equally many: the paper's balancing."""
    labels = [int(v) for v in labels]
    pos = [i for i, v in enumerate(labels) if v == 1]
    neg = [i for i, v in enumerate(labels) if v == 0]
    if not pos or not neg or len(pos) == len(neg):
        return []
    small, need = (pos, len(neg) - len(pos)) if len(pos) < len(neg) else (neg, len(pos) - len(neg))
    extra: list[int] = []
    while need > 0:
        take = min(need, len(small))
        extra += [small[i] for i in sorted(rng.choice(len(small), size=take, replace=False))]
        need -= take
    return extra


def class_weights(labels: list[int]) -> dict[int, float]:
    """Inverse-frequency weights (n / (2 n_c)) for weighted sampling."""
    labels = [int(v) for v in labels]
    n = len(labels)
    return {c: (n / (2 * labels.count(c)) if labels.count(c) else 0.0) for c in (0, 1)}


# ---------------------------------------------------------------- preview


def draw_box(image: np.ndarray, box, colour=(0, 220, 0), thickness: int = 2) -> np.ndarray:
    import cv2

    img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    img = np.ascontiguousarray(img.copy())
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, thickness)
    return img


def preview_grid(items: list[tuple[np.ndarray, tuple | None]], techniques: tuple[str, ...],
                 settings: AugmentSettings | None = None, tile: int = 192) -> np.ndarray:
    """A grid (BGR): one row per input image, its original then each variant with its box drawn; a rejected
    variant has a red box and a red X."""
    import cv2

    vs = variants(techniques, settings)
    rows = []
    for image, box in items:
        tiles = [_label(cv2.resize(draw_box(image, box), (tile, tile)), "original")]
        for v in vs:
            a = apply_variant(image, box, v, settings)
            t = draw_box(a.image, a.box, (0, 220, 0) if a.ok else (0, 0, 255))
            t = cv2.resize(t, (tile, tile))
            if not a.ok:
                cv2.line(t, (0, 0), (tile - 1, tile - 1), (0, 0, 255), 2)
                cv2.line(t, (0, tile - 1), (tile - 1, 0), (0, 0, 255), 2)
            tiles.append(_label(t, v.name + ("" if a.ok else " REJECTED")))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0) if rows else np.zeros((tile, tile, 3), np.uint8)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


# ---------------------------------------------------------------- checking a table's valve frames


@dataclass
class AugmentCheck:
    """What the fixed variants of ``techniques`` make of a table's valve frames."""

    frames: int
    kept: int
    #: (frame key, variant, reason) of each variant rejected (its box leaves the image).
    rejected: list[tuple[str, str, str]]


def fixed_techniques(spec: str | int) -> tuple[str, ...]:
    """The techniques of a Table 1 experiment or ``+``-joined names; not ``online`` (it has no fixed variants)."""
    techniques = parse_augmentation(spec)
    if techniques == ONLINE:
        raise EchoAVCError("the preview shows the fixed variants; name an experiment or techniques")
    return techniques


def valve_frames(table, where=None) -> list[dict]:
    """The table's valve frames (rows with a box), in table order; ``where``: the table's folder, for errors."""
    valve = table.frame[table.frame["role"] == "valve"]
    if valve.empty:
        raise EchoAVCError("the table has no valve frames", where)
    return valve.to_dict("records")


def load_valve_frame(table, row: dict) -> tuple[np.ndarray, tuple]:
    """A valve frame's standard image and its box."""
    import cv2

    path = table.image_file(row["image_path"])
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EchoAVCError("cannot read image", path)
    return img, (row["x1"], row["y1"], row["x2"], row["y2"])


def check_augmentation(table, techniques: tuple[str, ...], settings: AugmentSettings | None = None,
                       where=None) -> AugmentCheck:
    """Every fixed variant of every valve frame: how many are kept, and which are rejected and why."""
    rows = valve_frames(table, where)
    kept, rejected = 0, []
    for r in rows:
        img, box = load_valve_frame(table, r)
        for a in augment(img, box, techniques, settings):
            if a.ok:
                kept += 1
            else:
                rejected.append((r["key"], a.name, a.reason))
    return AugmentCheck(len(rows), kept, rejected)


def table_preview(table, techniques: tuple[str, ...], n: int = 6, seed: int = 0,
                  settings: AugmentSettings | None = None, where=None) -> tuple[np.ndarray, int]:
    """``preview_grid`` (BGR) of ``n`` valve frames drawn at random with ``seed``, and how many it shows."""
    rows = valve_frames(table, where)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(rows), size=min(n, len(rows)), replace=False))
    return preview_grid([load_valve_frame(table, rows[i]) for i in pick], techniques, settings), len(pick)
