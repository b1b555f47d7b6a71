"""The one valve-box record every annotation format reads into and writes from.

A :class:`ValveBox` holds (x1, y1, x2, y2) in continuous pixel-edge coordinates
(pixel (i, j) covers [j, j+1) x [i, i+1), as in :mod:`echoavc.cone.transform`)
in a named space:

- ``original``: the frame as stored in the DICOM file (``original_cols`` x ``original_rows``);
- ``standard``: the ingested square image (``std_size`` x ``std_size``, 640 by default).

Boxes move between the spaces only through the frame's stored
:class:`~echoavc.cone.transform.StandardTransform`, so a box read in one space and
written in the other lands on the same pixels.

:class:`FrameIndex` is the ingest manifest seen from an annotation file: it resolves
the many ways a file names an image (``<source_sha256>:<frame_index>``, the ingest
``image_path``, its file name or stem) to one frame, with that frame's transform and sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from echoavc.cone.transform import StandardTransform
from echoavc.errors import EchoAVCError

SPACES = ("original", "standard")
#: The one object class: the aortic valve seen in short axis.
VALVE_LABEL = "aortic_valve"

TRANSFORM_COLUMNS = ["crop_x", "crop_y", "crop_w", "crop_h", "scale", "pad_x", "pad_y", "std_size"]


def check_space(space: str) -> str:
    if space not in SPACES:
        raise EchoAVCError(f"unknown coordinate space {space!r}; expected one of {', '.join(SPACES)}")
    return space


def frame_key(source_sha256: str, frame_index: int) -> str:
    """The join key of one frame: ``<source_sha256>:<frame_index>``."""
    return f"{source_sha256}:{int(frame_index)}"


@dataclass(frozen=True)
class ValveBox:
    """A valve rectangle on one frame, in a named coordinate space."""

    key: str  #: ``<source_sha256>:<frame_index>``
    x1: float
    y1: float
    x2: float
    y2: float
    space: str = "standard"
    label: str = VALVE_LABEL
    #: where it came from: ``<format>:<file>[#<row or item>]`` (for messages)
    origin: str = ""

    @property
    def xyxy(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], dtype=np.float64)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def to_space(self, space: str, transform: StandardTransform) -> "ValveBox":
        """The same box in ``space``, mapped through the frame's transform."""
        check_space(space)
        if space == self.space:
            return self
        xyxy = transform.box_to_standard(self.xyxy) if space == "standard" else transform.box_to_original(self.xyxy)
        return replace(self, x1=float(xyxy[0]), y1=float(xyxy[1]), x2=float(xyxy[2]), y2=float(xyxy[3]), space=space)


@dataclass(frozen=True)
class Problem:
    """One validation finding: ``error`` stops a build, ``warning`` does not."""

    level: str  #: "error" | "warning"
    where: str  #: file, frame key, exam or patient the problem is about
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass
class BoxFile:
    """What an importer read: boxes resolved to frames, and the references it could not use."""

    boxes: list[ValveBox] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class FrameInfo:
    key: str
    source_sha256: str
    frame_index: int
    image_path: str
    transform: StandardTransform
    original_size: tuple[int, int]  #: (width, height)

    def size(self, space: str) -> tuple[int, int]:
        """(width, height) of the image in ``space``."""
        if check_space(space) == "original":
            return self.original_size
        return (self.transform.size, self.transform.size)


class FrameIndex:
    """Manifest frames by every name an annotation file may use for them."""

    def __init__(self, manifest: pd.DataFrame, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        missing = [c for c in ["source_sha256", "frame_index", "image_path", "original_rows", "original_cols",
                               *TRANSFORM_COLUMNS] if c not in manifest.columns]
        if missing:
            raise EchoAVCError(f"not an ingest manifest: missing columns {', '.join(missing)}", path)
        self.frames: dict[str, FrameInfo] = {}
        self._names: dict[str, set[str]] = {}
        for row in manifest.to_dict("records"):
            key = frame_key(row["source_sha256"], row["frame_index"])
            t = StandardTransform.from_dict({**row, "size": row["std_size"]})
            info = FrameInfo(key, str(row["source_sha256"]), int(row["frame_index"]), str(row["image_path"]), t,
                             (int(row["original_cols"]), int(row["original_rows"])))
            self.frames[key] = info
            p = Path(info.image_path)
            for name in (key, info.image_path, p.name, p.stem):
                self._names.setdefault(name, set()).add(key)
        # a file's hash alone names its frame when the file has exactly one
        by_sha: dict[str, list[str]] = {}
        for info in self.frames.values():
            by_sha.setdefault(info.source_sha256, []).append(info.key)
        for sha, keys in by_sha.items():
            self._names.setdefault(sha, set()).update(keys)

    @classmethod
    def read(cls, path: str | Path) -> "FrameIndex":
        return cls(read_manifest(path), path)

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, key: str) -> bool:
        return key in self.frames

    def __getitem__(self, key: str) -> FrameInfo:
        return self.frames[key]

    def resolve(self, ref: str | None = None, sha256: str | None = None, frame_index=None) -> str:
        """The frame key a reference names; raises ``KeyError`` with the reason when none or several."""
        if sha256 not in (None, "") and frame_index not in (None, ""):
            try:
                key = frame_key(str(sha256).strip(), int(float(frame_index)))
            except ValueError:
                raise KeyError(f"frame index {frame_index!r} is not a number") from None
            if key in self.frames:
                return key
            raise KeyError(f"frame {key} is not in the manifest")
        if ref is None or str(ref).strip() == "":
            raise KeyError("no image reference")
        ref = str(ref).strip().replace("\\", "/")
        for cand in (ref, ref.lstrip("./"), Path(ref).name, Path(ref).stem):
            keys = self._names.get(cand)
            if keys:
                if len(keys) == 1:
                    return next(iter(keys))
                raise KeyError(f"image {ref!r} names {len(keys)} frames; give source_sha256:frame_index")
        raise KeyError(f"image {ref!r} is not in the manifest")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The ingest manifest, with ids as text and the transform as numbers."""
    path = Path(path)
    if not path.is_file():
        raise EchoAVCError("no such manifest", path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EchoAVCError(f"cannot read manifest ({exc})", path) from None
    for c in ("frame_index", "original_rows", "original_cols", "crop_x", "crop_y", "crop_w", "crop_h", "std_size"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    for c in ("scale", "pad_x", "pad_y"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    bad = df[[c for c in TRANSFORM_COLUMNS + ["frame_index"] if c in df.columns]].isna().any(axis=1)
    if bad.any():
        raise EchoAVCError(f"manifest row {int(np.flatnonzero(bad.to_numpy())[0]) + 2} has no transform", path)
    return df


# ---------------------------------------------------------------- small shared I/O helpers


def label_files(path: str | Path, suffix: str, skip: tuple[str, ...] = ()) -> list[Path]:
    """One label file, or every ``*suffix`` file below a folder (sorted; names in ``skip`` left out)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob(f"*{suffix}") if p.name not in skip)
    if path.is_file():
        return [path]
    raise EchoAVCError("no such file or folder", path)


def fmt(v: float, digits: int = 4) -> str:
    """A coordinate as short text: no trailing zeros, no ``-0``."""
    s = f"{float(v):.{digits}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def boxes_in_space(boxes: list[ValveBox], frames: FrameIndex, space: str) -> list[ValveBox]:
    check_space(space)
    return [b.to_space(space, frames[b.key].transform) for b in boxes]
