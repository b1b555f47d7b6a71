"""A ``predict`` results folder as the review app sees it: exams, their clips and frames, the kept standard
frames, and the one rule for files: only pictures inside RESULTS are ever served."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from echoavc.errors import EchoAVCError
from echoavc.review.frames import load_clips

__all__ = ["Results", "load_results", "safe_file", "SERVED_SUFFIXES"]

#: the only files the app serves from RESULTS: pictures (never the database, the CSVs or results.json)
SERVED_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def safe_file(results: Path, rel: str) -> Path | None:
    """``RESULTS/rel`` when it is a picture inside RESULTS (after resolving ``..`` and links), else None."""
    root = results.resolve()
    if not rel or "\x00" in rel:
        return None
    try:
        path = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(root) or path == root:
        return None
    if path.suffix.lower() not in SERVED_SUFFIXES or not path.is_file():
        return None
    return path


@dataclass
class Results:
    folder: Path
    exams: list[dict]
    frames: list[dict]
    model: dict
    #: source_sha256 -> clip record (review/clips/*.json)
    clips: dict[str, dict]
    standard_size: int = 640
    by_exam: dict[str, dict] = field(default_factory=dict)

    def exam(self, exam_id: str) -> dict | None:
        return self.by_exam.get(exam_id)

    def exam_clips(self, exam_id: str) -> list[dict]:
        """The exam's clips in source order, each with its frames (results merged with the kept images)."""
        frames_of: dict[str, list[dict]] = {}
        for f in self.frames:
            if f.get("exam_id") == exam_id:
                frames_of.setdefault(f.get("source"), []).append(f)
        sha_of = {c["source"]: sha for sha, c in self.clips.items() if c.get("exam_id") == exam_id}
        out = []
        for source in (self.by_exam[exam_id].get("sources") or []):
            sha = sha_of.get(source)
            kept = {fr["frame_index"]: fr["image"] for fr in self.clips[sha]["frames"]} if sha else {}
            frames = []
            for f in sorted(frames_of.get(source, []), key=lambda f: f["frame_index"]):
                frames.append({**f, "image": kept.get(f["frame_index"], "")})
            out.append({"source": source, "source_sha256": sha or "", "frames": frames,
                        "record": self.clips.get(sha) if sha else None})
        return out


def load_results(folder: str | Path) -> Results:
    """Read RESULTS/results.json (and review/, when ``predict --review-frames`` kept frames); EchoAVCError
    naming the file when it is not a results folder."""
    folder = Path(folder)
    path = folder / "results.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EchoAVCError("not a results folder (no results.json; run `echoavc predict` first)", path) from None
    except (OSError, ValueError) as exc:
        raise EchoAVCError(f"unreadable results ({type(exc).__name__})", path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("exams"), list) or not isinstance(doc.get("frames"), list):
        raise EchoAVCError("results.json holds no exams and frames", path)
    size = 640
    meta = folder / "review" / "review.json"
    if meta.is_file():
        try:
            size = int(json.loads(meta.read_text())["preprocessing"]["standard_size"])
        except (OSError, ValueError, KeyError, TypeError):
            raise EchoAVCError("unreadable review frames record", meta) from None
    res = Results(folder, doc["exams"], doc["frames"], doc.get("model") or {}, load_clips(folder), size)
    res.by_exam = {e["exam_id"]: e for e in res.exams}
    return res
