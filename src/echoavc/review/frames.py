"""The review frames ``predict --review-frames`` keeps: each screened clip's de-identified standard frames
(the 640x640 pixels the models saw; burned-in text outside the cone is already black), with what joins them to
the ingest manifest (``source_sha256`` + ``frame_index``) and the clip's :class:`StandardTransform` (so a box
drawn on a standard frame maps back to the original frame exactly).

Layout inside RESULTS::

    review/review.json                 the bundle's Preprocessing record (standard size, frames kept, cone)
    review/clips/<sha[:16]>.json       one clip: source, source_sha256, exam_id, original shape, transform,
                                       cone outline (standard pixels), frames [{frame_index, image}]
    review/frames/<sha[:16]>/f0003.jpg the standard frames (JPEG, quality 92)

Every file is written atomically (:mod:`echoavc.files`); the review app reads nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from echoavc.files import atomic_write_bytes, atomic_write_text

__all__ = ["REVIEW_DIR", "write_review_frames", "write_review_meta", "clip_file", "load_clips", "JPEG_QUALITY"]

REVIEW_DIR = "review"
JPEG_QUALITY = 92


def clip_file(sha: str) -> str:
    return f"{REVIEW_DIR}/clips/{sha[:16]}.json"


def write_review_frames(out_dir: Path, prep, images: Sequence[np.ndarray], frame_indices: Sequence[int],
                        source: str, sha: str, exam_id: str) -> str:
    """Keep one clip's standard frames ``images`` (as the models saw them) and its record; returns the record's
    path relative to ``out_dir``. ``prep``: the :class:`~echoavc.preprocess.clip.PreparedClip` that made them."""
    out_dir = Path(out_dir)
    frames = []
    for index, image in zip(frame_indices, images):
        rel = f"{REVIEW_DIR}/frames/{sha[:16]}/f{int(index):04d}.jpg"
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # not expected for a uint8 image; the clip is still screened
            continue
        atomic_write_bytes(out_dir / rel, buf.tobytes())
        frames.append({"frame_index": int(index), "image": rel})
    std = prep.frame
    record = {"source": source, "source_sha256": sha, "exam_id": exam_id,
              "original_rows": int(prep.shape[0]), "original_cols": int(prep.shape[1]),
              "transform": asdict(std.transform),
              "cone_outline": [[round(float(x), 2), round(float(y), 2)] for x, y in std.outline()],
              "frames": frames}
    rel = clip_file(sha)
    atomic_write_text(out_dir / rel, json.dumps(record, indent=1) + "\n")
    return rel


def write_review_meta(out_dir: Path, preprocessing: dict) -> None:
    """``review/review.json``: the Preprocessing record the frames were made with (bundle.json's)."""
    atomic_write_text(Path(out_dir) / REVIEW_DIR / "review.json",
                      json.dumps({"format": "echoavc-review-frames/1", "preprocessing": preprocessing}, indent=1)
                      + "\n")


def load_clips(results: Path) -> dict[str, dict]:
    """source_sha256 -> clip record, for every clip whose frames were kept (empty without --review-frames)."""
    out = {}
    folder = Path(results) / REVIEW_DIR / "clips"
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # written atomically: only a foreign file can be unreadable here
        if isinstance(rec, dict) and rec.get("source_sha256"):
            out[rec["source_sha256"]] = rec
    return out
