"""One input file screened: DICOM or exported image bytes in, a :class:`ClipResult` and overlay pictures out.

The standard frames are made in memory by :mod:`echoavc.preprocess`, exactly as ``ingest`` writes them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from echoavc.errors import EchoAVCError, NoConeError
from echoavc.files import progress_bar
from echoavc.phase.policy import PolicyGate
from echoavc.phase.reader import PhaseReader
from echoavc.screening.core import ClipResult, FrameResult, Screener, STATUS_TEXT, exam_id_of, heat_map

__all__ = ["read_input", "screen_input", "explain_exams", "redraw_with_heat_map", "frame_label",
           "write_frame_overlay", "HEAT_MAP_FILE", "IMAGE_MAGIC"]

IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff")


def read_input(data: bytes, name: str, ingest_settings, with_header: bool = False, sha: str | None = None):
    """(prepare, exam key, frame count) for a DICOM file or an exported image, ``prepare()`` giving the prepared
    clip; EchoAVCError for anything else. ``with_header``: a fourth item, the pydicom dataset (None for an image).
    ``sha``: the bytes' SHA-256, when the caller has it."""
    from echoavc.dicom.read import open_dicom
    from echoavc.preprocess.clip import prepare_clip, prepare_image

    if data[:4].startswith(IMAGE_MAGIC[0]) or data[:3] == IMAGE_MAGIC[1]:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise EchoAVCError("unreadable image", name)
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        if img.dtype != np.uint8:
            img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        # exported images carry no study: the folder holding them is the exam
        folder = "folder:" + str(Path(name.replace("!", "/")).parent)
        made = (lambda: prepare_image(img, ingest_settings, name)), folder, 1
        return (*made, None) if with_header else made
    clip = open_dicom(data, name, sha)
    ds = clip.dataset
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    if not study:
        pid, date = str(ds.get("PatientID", "") or ""), str(ds.get("StudyDate", "") or "")
        study = f"patient:{pid}:{date}" if pid else f"file:{clip.sha256}"
    made = (lambda: prepare_clip(clip, ingest_settings)), study, clip.n_frames
    return (*made, ds) if with_header else made


def screen_input(screener: Screener, data: bytes, name: str, sha: str, out_dir: Path,
                 overlays: str = "driving", review_frames: bool = False) -> ClipResult:
    """Screen one input file's bytes; raises EchoAVCError for a file that is not a readable DICOM or image.
    ``review_frames``: also keep the standard frames for ``echoavc review`` (:mod:`echoavc.review.frames`)."""
    from echoavc.dicom.read import frame_indices

    from echoavc.views.headers import header_kind
    from echoavc.views.screening import header_frames, screen_with_view

    t0 = time.perf_counter()
    ingest_settings = screener.bundle.ingest_settings()
    prepare, study, n_frames, header = read_input(data, name, ingest_settings, with_header=True, sha=sha)
    exam_id = exam_id_of(study, screener.secret)
    kind = header_kind(header)
    if not kind.screened:  # M-mode or spectral Doppler: not a 2D view, whatever a model would say
        frames, view = header_frames(kind, exam_id, name, frame_indices(n_frames, ingest_settings.every_nth))
        return ClipResult(name, sha, exam_id, frames, seconds={"total": round(time.perf_counter() - t0, 4)},
                          view=view)
    try:
        prep = prepare()
    except NoConeError:
        # no cone: every kept frame says so, and the exam can still be decided from its other clips
        kept = frame_indices(n_frames, ingest_settings.every_nth)
        return ClipResult(name, sha, exam_id, [FrameResult(exam_id, name, int(k), "no_cone") for k in kept],
                          seconds={"total": round(time.perf_counter() - t0, 4)})
    t1 = time.perf_counter()
    images, reader = [], PhaseReader(prep)
    for _, frame in prep.frames():
        reader.add(frame)  # the ECG drawn on screen, from the original pixels before masking
        images.append(prep.standard(frame))
    t2 = time.perf_counter()
    # the frame policy between the models: they skip the frames it leaves out
    gate = PolicyGate(lambda boxes: reader.phase(images, boxes), screener.settings.frames)
    frames, view = screen_with_view(screener, images, prep.kept, exam_id, name, gate)
    phase = gate.apply(frames)
    if review_frames:
        from echoavc.review.frames import write_review_frames

        write_review_frames(out_dir, prep, images, prep.kept, name, sha, exam_id)
    t3 = time.perf_counter()
    decided = [i for i, f in enumerate(frames) if f.status == "decided"]
    best = max(decided, key=lambda i: frames[i].probability) if decided else None
    result = ClipResult(name, sha, exam_id, frames, best, phase=phase, view=view)
    if overlays != "none":
        outline = prep.standard_outline()
        show = best if best is not None else len(frames) // 2
        picks = range(len(frames)) if overlays == "all" else [show]
        # the clip's best frame gets its Grad-CAM now, while the frame is in memory: an exam's driving frame is the
        # best frame of one of its clips, so the exams need no second reading of their files
        explain = best is not None and screener.settings.explain
        for i in picks:
            f = frames[i]
            rel = f"overlays/{exam_id}/{sha[:12]}-f{f.frame_index:04d}.png"
            cam = heat_map(screener.classifier, images[i], f.valve_box) if explain and i == best else None
            write_frame_overlay(out_dir, rel, images[i], outline, f, cam)
            f.overlay = rel
            if i == show:
                result.overlay = rel
        result.heat_map = explain
    result.seconds = {"prepare": round(t1 - t0, 4), "decode_standardise": round(t2 - t1, 4),
                      "models": round(t3 - t2, 4), "overlays": round(time.perf_counter() - t3, 4),
                      "frames": len(frames)}
    return result


HEAT_MAP_FILE = "heat_maps.json"


def explain_exams(exams: list[dict], clips: Sequence[ClipResult], sources: dict, out_dir: Path, explainer,
                  ingest_settings, done: dict, on_done: Callable[[], None] = lambda: None,
                  progress: bool = False) -> None:
    """Make sure the overlay of each exam's driving frame carries the classifier's Grad-CAM.

    The driving frame is the best frame of one of the exam's clips, whose overlay ``screen_input`` drew with its
    heat map (``ClipResult.heat_map``); where it did not (results kept from an older echoavc), this reads that
    file again for the one frame. ``sources``: input name -> Source; ``explainer()``: the classifier (loaded only
    when needed); ``done``: overlay -> file sha256, overlays already redrawn (updated; ``on_done`` after each).
    Sets ``exam["heat_map"]``. A file changed or gone since it was screened keeps its plain overlay.
    """
    by_source = {c.source: c for c in clips}
    todo = []
    for e in exams:
        e["heat_map"] = False
        d = e.get("driving_frame")
        clip = by_source.get(d["source"]) if d else None
        f = next((f for f in clip.frames if f.frame_index == d["frame_index"]), None) if clip else None
        if f is None or not f.overlay or not f.valve_box:
            continue
        drawn = clip.heat_map and clip.frames[clip.best] is f  # while it was screened (heat_map: best is set)
        if drawn or done.get(f.overlay) == clip.sha256:
            e["heat_map"] = True
        else:
            todo.append((e, clip, f))
    if not todo:
        return
    clf = explainer()
    with progress_bar("heat maps", len(todo), enabled=progress) as advance:
        for e, clip, f in todo:
            if redraw_with_heat_map(clf, sources.get(clip.source), clip, f, out_dir, ingest_settings):
                done[f.overlay] = clip.sha256
                e["heat_map"] = True
                on_done()
            advance()


def redraw_with_heat_map(clf, src, clip: ClipResult, f: FrameResult, out_dir: Path, ingest_settings) -> bool:
    """Read ``clip``'s file again for frame ``f`` and redraw its overlay with Grad-CAM; False when the file is
    gone or changed since it was screened."""
    from echoavc.dicom.read import sha256_bytes

    try:
        data = src.read() if src is not None else None
    except OSError:
        return False
    if data is None or sha256_bytes(data) != clip.sha256:
        return False
    try:
        prepare, _, _ = read_input(data, clip.source, ingest_settings, sha=clip.sha256)
        prep = prepare()
        image = prep.standard(next(prep.frames([f.frame_index]))[1])
    except EchoAVCError:  # it was screened from these very bytes: not expected, and not worth failing
        return False
    write_frame_overlay(out_dir, f.overlay, image, prep.standard_outline(), f, heat_map(clf, image, f.valve_box))
    return True


def frame_label(f: FrameResult) -> str:
    if f.status != "decided" and f.status != "low_confidence":
        return STATUS_TEXT[f.status]
    call = f.decision or "low confidence"
    return f"{call} P={f.probability:.2f} (valve {f.valve_score:.2f})"


def write_frame_overlay(out_dir: Path, rel: str, image: np.ndarray, outline: np.ndarray, f: FrameResult,
                   cam: np.ndarray | None) -> None:
    from echoavc.report import frame_overlay, write_overlay

    pic = frame_overlay(image, cone_outline=outline, box=f.valve_box, label=frame_label(f),
                        decision=f.decision or None, cam=cam)
    write_overlay(out_dir, rel, pic)
