"""``echoavc predict``: screen exams with a model bundle.

DICOM files, folders, zip archives or exported images (PNG/JPEG) in; per frame and per exam results out::

    decode -> cone -> standard frame (in memory, exactly as ``ingest`` makes it) -> valve box (detector)
           -> valve crop -> calibrated P(calcified) (classifier) -> frame decision -> exam decision

Each frame gets a status: ``decided``, ``no_cone`` (no ultrasound field found), ``no_valve`` (not an
aortic-valve short-axis view, or no valve found), or ``low_confidence`` (a valve box, but a weak one: shown,
not used for the exam). An exam (a DICOM study; for images, the folder holding them) is called on the
aggregate of its decided frames against the exam threshold chosen on validation exams.

The numeric core (:class:`Screener`: numpy frames in, :class:`FrameResult` out) is separate from the batch
(:func:`predict`: files in; CSV, JSON, overlays and the HTML report out). A batch never stops on a bad file,
writes every file atomically, and a re-run skips inputs already done with the same bundle and settings.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from echoavc.bundle import Bundle, load_bundle
from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text, csv_text, progress_bar, remove_stale_temporaries
from echoavc.settings import ScreeningSettings, from_dict

STATUS_TEXT = {
    "decided": "decided",
    "no_cone": "no ultrasound cone found",
    "no_valve": "not an aortic-valve short-axis view, or no valve found",
    "low_confidence": "valve found with low confidence: not used for the exam",
}
FRAME_COLUMNS = ["exam_id", "source", "frame_index", "status", "status_text", "valve_score", "valve_x1", "valve_y1",
                 "valve_x2", "valve_y2", "probability", "decision", "overlay"]
EXAM_COLUMNS = ["exam_id", "decision", "probability", "interval_low", "interval_high", "threshold", "n_frames",
                "n_decided", "driving_source", "driving_frame", "reason", "sources", "overlay"]
STATE_DIR = ".state"
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff")


def exam_id_of(study_uid: str) -> str:
    """A short, stable exam id that does not show the study UID (which can identify a patient)."""
    return "E" + hashlib.sha256(str(study_uid).encode()).hexdigest()[:10]


@dataclass
class FrameResult:
    """One frame's outcome; boxes are in standard-image pixels (the frame as the models see it)."""

    exam_id: str
    source: str
    frame_index: int
    status: str
    valve_score: float | None = None
    valve_box: list[float] | None = None
    probability: float | None = None
    decision: str = ""
    overlay: str = ""

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]

    def to_dict(self) -> dict:
        return {**asdict(self), "status_text": self.status_text}


@dataclass
class ClipResult:
    """What one input produced: its frames, and the picture of its most telling frame."""

    source: str
    sha256: str
    exam_id: str
    frames: list[FrameResult]
    #: index into ``frames`` of the decided frame with the highest probability (None: no decided frame)
    best: int | None = None
    overlay: str = ""
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "exam_id": self.exam_id, "best": self.best,
                "overlay": self.overlay, "seconds": self.seconds, "frames": [asdict(f) for f in self.frames]}

    @classmethod
    def from_dict(cls, d: dict) -> "ClipResult":
        return cls(d["source"], d["sha256"], d["exam_id"], [FrameResult(**f) for f in d["frames"]], d.get("best"),
                   d.get("overlay", ""), d.get("seconds", {}))


# ---------------------------------------------------------------- the numeric core


def nearest_located(kept: Sequence[int], located: Sequence[int]) -> list[int]:
    """For each kept frame, the position in ``located`` of the located frame nearest to it."""
    loc = np.asarray(located)
    return [int(np.argmin(np.abs(loc - k))) for k in kept]


def located_frames(kept: Sequence[int], limit: int) -> list[int]:
    """The frames the detector runs on: all, or ``limit`` evenly spaced ones."""
    if limit <= 0 or len(kept) <= limit:
        return list(kept)
    return sorted({kept[int(round(i))] for i in np.linspace(0, len(kept) - 1, limit)})


class Screener:
    """Standard frames in, frame results out, with a loaded bundle (numpy in, records out; no files)."""

    def __init__(self, bundle: Bundle, backend: str = "auto", settings: ScreeningSettings | None = None,
                 threads: int = 0):
        self.bundle = bundle
        self.settings = settings or bundle.screening
        self.backend = bundle.backend(backend)
        self.detector = bundle.detector(self.backend, threads)
        self.classifier = bundle.classifier(self.backend, threads)
        self.frame_threshold = bundle.frame_threshold
        self._explainer = None

    @property
    def explainer(self):
        """The PyTorch classifier for Grad-CAM (ONNX graphs have no gradients)."""
        if self._explainer is None:
            self._explainer = self.classifier if self.classifier.model is not None else self.bundle.classifier("torch")
        return self._explainer

    def boxes(self, images: Sequence[np.ndarray], kept: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (n, 4), scores (n,)) per kept frame; NaN where no box reaches ``valve_conf``."""
        s = self.settings
        located = located_frames(kept, s.detect_frames)
        pos = {k: i for i, k in enumerate(kept)}
        top = self.detector.top([images[pos[k]] for k in located], conf=s.valve_conf, batch_size=s.batch)
        near = nearest_located(kept, located)
        return top.boxes[near], top.scores[near]

    def probabilities(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """Calibrated P(calcified) for each image's box (NaN where there is no box)."""
        p = np.full(len(images), np.nan)
        has = [i for i in range(len(images)) if np.isfinite(boxes[i]).all()]
        for j in range(0, len(has), self.settings.batch):
            idx = has[j:j + self.settings.batch]
            crops = np.stack([self.classifier.prepare(images[i], boxes[i]) for i in idx])
            p[idx] = self.classifier.predict_proba(crops)
        return p

    def screen(self, images: Sequence[np.ndarray], kept: Sequence[int], exam_id: str, source: str) -> list[FrameResult]:
        boxes, scores = self.boxes(images, kept)
        probs = self.probabilities(images, boxes)
        out = []
        for i, k in enumerate(kept):
            if not np.isfinite(scores[i]):
                out.append(FrameResult(exam_id, source, int(k), "no_valve"))
                continue
            status = "decided" if scores[i] >= self.settings.decide_conf else "low_confidence"
            p = float(probs[i])
            decision = ("calcified" if p >= self.frame_threshold else "not calcified") if status == "decided" else ""
            out.append(FrameResult(exam_id, source, int(k), status, round(float(scores[i]), 5),
                                   [round(float(v), 2) for v in boxes[i]], round(p, 6), decision))
        return out


def heat_map(classifier, image: np.ndarray, box) -> np.ndarray:
    """Grad-CAM of a PyTorch classifier's logit for ``box``, mapped onto the standard image (0 outside the crop)."""
    import torch

    from echoavc.classifier.data import normalise
    from echoavc.classifier.gradcam import grad_cam
    from echoavc.dataset.materialise import crop_to_image

    crop = classifier.prepare(image, box)
    cam, _ = grad_cam(classifier.model, torch.from_numpy(normalise(crop, classifier.mean, classifier.std)))
    return crop_to_image(cam, box, image.shape[:2], classifier.crop.margin)


# ---------------------------------------------------------------- one input


def read_input(data: bytes, name: str, ingest_settings):
    """(prepare, exam key, frame count) for a DICOM file or an exported image, ``prepare()`` giving the prepared
    clip; EchoAVCError for anything else."""
    from echoavc.dicom.read import open_dicom
    from echoavc.ingest import prepare_clip, prepare_image

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
        return (lambda: prepare_image(img, ingest_settings, name)), folder, 1
    clip = open_dicom(data, name)
    ds = clip.dataset
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    if not study:
        pid, date = str(ds.get("PatientID", "") or ""), str(ds.get("StudyDate", "") or "")
        study = f"patient:{pid}:{date}" if pid else f"file:{clip.sha256}"
    return (lambda: prepare_clip(clip, ingest_settings)), study, clip.n_frames


def screen_input(screener: Screener, data: bytes, name: str, sha: str, out_dir: Path,
                 overlays: str = "driving") -> ClipResult:
    """Screen one input file's bytes; raises EchoAVCError for a file that is not a readable DICOM or image."""
    from echoavc.dicom.read import frame_indices

    t0 = time.perf_counter()
    ingest_settings = screener.bundle.ingest_settings()
    prepare, study, n_frames = read_input(data, name, ingest_settings)
    exam_id = exam_id_of(study)
    try:
        prep = prepare()
    except EchoAVCError as exc:
        if "cone" not in exc.reason and "field" not in exc.reason:
            raise
        # no cone: every kept frame says so, and the exam can still be decided from its other clips
        kept = frame_indices(n_frames, ingest_settings.every_nth)
        return ClipResult(name, sha, exam_id, [FrameResult(exam_id, name, int(k), "no_cone") for k in kept],
                          seconds={"total": round(time.perf_counter() - t0, 4)})
    t1 = time.perf_counter()
    images = [prep.standard(frame) for _, frame in prep.frames()]
    t2 = time.perf_counter()
    frames = screener.screen(images, prep.kept, exam_id, name)
    t3 = time.perf_counter()
    decided = [i for i, f in enumerate(frames) if f.status == "decided"]
    best = max(decided, key=lambda i: frames[i].probability) if decided else None
    result = ClipResult(name, sha, exam_id, frames, best)
    if overlays != "none":
        outline = prep.standard_outline()
        show = best if best is not None else len(frames) // 2
        picks = range(len(frames)) if overlays == "all" else [show]
        for i in picks:
            f = frames[i]
            rel = f"overlays/{exam_id}/{sha[:12]}-f{f.frame_index:04d}.png"
            # Grad-CAM comes later, on the frames that drive an exam (known once all its files are screened)
            _write_overlay(out_dir, rel, images[i], outline, f, None)
            f.overlay = rel
            if i == show:
                result.overlay = rel
    result.seconds = {"prepare": round(t1 - t0, 4), "decode_standardise": round(t2 - t1, 4),
                      "models": round(t3 - t2, 4), "overlays": round(time.perf_counter() - t3, 4),
                      "frames": len(frames)}
    return result


HEAT_MAP_FILE = "heat_maps.json"


def explain_exams(exams: list[dict], clips: Sequence[ClipResult], sources: dict, out_dir: Path, explainer,
                  ingest_settings, done: dict, on_done: Callable[[], None] = lambda: None,
                  progress: bool = False) -> None:
    """Redraw the overlay of each exam's driving frame with the classifier's Grad-CAM.

    Which frame drives an exam is known only once all its files are screened, so this re-reads those files
    (one frame each). ``sources``: input name -> Source; ``explainer()``: the PyTorch classifier (loaded only
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
        if done.get(f.overlay) == clip.sha256:
            e["heat_map"] = True
        else:
            todo.append((e, clip, f))
    if not todo:
        return
    clf = explainer()
    with progress_bar("heat maps", len(todo), enabled=progress) as advance:
        for e, clip, f in todo:
            if _redraw_with_heat_map(clf, sources.get(clip.source), clip, f, out_dir, ingest_settings):
                done[f.overlay] = clip.sha256
                e["heat_map"] = True
                on_done()
            advance()


def _redraw_with_heat_map(clf, src, clip: ClipResult, f: FrameResult, out_dir: Path, ingest_settings) -> bool:
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
        prepare, _, _ = read_input(data, clip.source, ingest_settings)
        prep = prepare()
        image = prep.standard(next(prep.frames([f.frame_index]))[1])
    except EchoAVCError:  # it was screened from these very bytes: not expected, and not worth failing
        return False
    _write_overlay(out_dir, f.overlay, image, prep.standard_outline(), f, heat_map(clf, image, f.valve_box))
    return True


def frame_label(f: FrameResult) -> str:
    if f.status != "decided" and f.status != "low_confidence":
        return STATUS_TEXT[f.status]
    call = f.decision or "low confidence"
    return f"{call} P={f.probability:.2f} (valve {f.valve_score:.2f})"


def _write_overlay(out_dir: Path, rel: str, image: np.ndarray, outline: np.ndarray, f: FrameResult,
                   cam: np.ndarray | None) -> None:
    from echoavc.report import frame_overlay, write_overlay

    pic = frame_overlay(image, cone_outline=outline, box=f.valve_box, label=frame_label(f),
                        decision=f.decision or None, cam=cam)
    write_overlay(out_dir, rel, pic)


# ---------------------------------------------------------------- exams


def exam_results(clips: Iterable[ClipResult], threshold: float, aggregate: str = "mean", n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> list[dict]:
    """One record per exam: the aggregate of its decided frames, a bootstrap interval (over clips when the
    exam has two or more, else over frames), the decision at ``threshold`` and the frame that drove it."""
    by_exam: dict[str, list[ClipResult]] = defaultdict(list)
    for c in clips:
        by_exam[c.exam_id].append(c)
    agg = {"mean": np.mean, "median": np.median, "max": np.max}[aggregate]
    rng = np.random.default_rng(seed)
    out = []
    for exam_id in sorted(by_exam):
        cl = sorted(by_exam[exam_id], key=lambda c: c.source)
        frames = [f for c in cl for f in c.frames]
        decided = [(ci, f) for ci, c in enumerate(cl) for f in c.frames if f.status == "decided"]
        rec = {"exam_id": exam_id, "sources": [c.source for c in cl], "n_frames": len(frames),
               "n_decided": len(decided), "threshold": float(threshold), "probability": None, "interval": None,
               "decision": "undetermined", "reason": "", "driving_frame": None, "overlay": ""}
        if not decided:
            statuses = {f.status for f in frames}
            rec["reason"] = ("no ultrasound cone found" if statuses == {"no_cone"} else
                             "no aortic-valve short-axis frame with a confident valve box")
            rec["overlay"] = next((c.overlay for c in cl if c.overlay), "")
            out.append(rec)
            continue
        p = np.array([f.probability for _, f in decided], dtype=np.float64)
        clip_of = np.array([ci for ci, _ in decided])
        value = float(agg(p))
        units = np.unique(clip_of)
        if units.size >= 2:
            groups = [p[clip_of == u] for u in units]
            boots = [float(agg(np.concatenate([groups[j] for j in rng.integers(0, len(groups), len(groups))])))
                     for _ in range(n_boot)]
        elif p.size >= 2:
            boots = [float(agg(p[rng.integers(0, p.size, p.size)])) for _ in range(n_boot)]
        else:
            boots = [value]
        a = (1 - level) / 2
        rec["probability"] = round(value, 6)
        rec["interval"] = [round(float(np.quantile(boots, a)), 6), round(float(np.quantile(boots, 1 - a)), 6)]
        rec["decision"] = "calcified" if value >= threshold else "not calcified"
        ci, f = max(decided, key=lambda t: t[1].probability)
        rec["driving_frame"] = {"source": f.source, "frame_index": f.frame_index, "probability": f.probability}
        rec["overlay"] = cl[ci].overlay if cl[ci].best is not None else f.overlay
        if p.size == 1:
            rec["reason"] = "one decided frame: no interval over frames"
        out.append(rec)
    return out


# ---------------------------------------------------------------- the batch


@dataclass
class PredictReport:
    out: Path
    exams: list[dict]
    frames: list[dict]
    failures: list[dict]
    done: int = 0
    resumed: int = 0
    seconds: float = 0.0

    @property
    def report_html(self) -> Path:
        return self.out / "report.html"


_WORKER: dict = {}


def _worker_init(bundle_dir: str, backend: str, settings: dict, threads: int) -> None:
    bundle = load_bundle(bundle_dir)
    _WORKER["screener"] = Screener(bundle, backend, from_dict(ScreeningSettings, settings), threads)


def _worker_run(path: str, member: str | None, out_dir: str, overlays: str) -> tuple[str, dict | str]:
    from echoavc.ingest import Source

    return _run_one(_WORKER["screener"], Source(Path(path), member), Path(out_dir), overlays)


def _run_one(screener: Screener, src, out_dir: Path, overlays: str) -> tuple[str, dict | str]:
    """("ok", clip record) or ("failed", reason); never raises for bad input."""
    from echoavc.dicom.read import sha256_bytes

    try:
        data = src.read()
        sha = sha256_bytes(data)
        return "ok", screen_input(screener, data, src.name, sha, out_dir, overlays).to_dict()
    except EchoAVCError as exc:
        return "failed", exc.reason
    except MemoryError:
        return "failed", "out of memory"
    except Exception as exc:  # a decoder bug must not stop the batch
        return "failed", f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


def _fingerprint(bundle: Bundle, settings: ScreeningSettings, backend: str, overlays: str) -> str:
    doc = {"bundle": bundle.meta.get("files"), "settings": asdict(settings), "backend": backend,
           "overlays": overlays}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def predict(inputs: Sequence[str | Path], model: str | Path, out: str | Path, *, backend: str = "auto",
            settings: ScreeningSettings | None = None, workers: int = 1, threads: int = 0,
            overlays: str = "driving", report: bool = True, progress: bool = True,
            on_failure: Callable[[str, str], None] | None = None) -> PredictReport:
    """Screen every input (files, folders, zips) with the bundle ``model`` into ``out``.

    Writes ``frames.csv``, ``exams.csv``, ``results.json``, ``failures.csv``, overlay PNGs and
    ``report.html``. Inputs already screened with the same bundle and settings are not redone.
    """
    from echoavc.ingest import find_sources

    if overlays not in ("driving", "all", "none"):
        raise EchoAVCError(f"overlays must be driving, all or none, not {overlays!r}")
    t0 = time.perf_counter()
    bundle = load_bundle(model)
    s = settings or bundle.screening
    if s.exam_aggregate not in ("mean", "median", "max"):
        raise EchoAVCError(f"exam aggregate must be mean, median or max, not {s.exam_aggregate!r}")
    backend = bundle.backend(backend)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / STATE_DIR).is_dir():
        remove_stale_temporaries(out)
    state_dir = out / STATE_DIR
    state_dir.mkdir(exist_ok=True)
    fp = _fingerprint(bundle, s, backend, overlays)
    sources, problems = find_sources(inputs)
    failures = [{"source": name, "reason": reason} for name, reason in problems]
    clips: list[ClipResult] = []
    todo = []
    resumed = 0
    for src in sources:
        st = state_dir / (hashlib.sha256(src.name.encode()).hexdigest()[:24] + ".json")
        rec = _load_state(st, fp)
        if rec is not None:
            resumed += 1
            if rec["status"] == "ok":
                clips.append(ClipResult.from_dict(rec["clip"]))
            else:
                failures.append({"source": src.name, "reason": rec["reason"]})
        else:
            todo.append((src, st))

    def finish(src, st: Path, status: str, payload) -> None:
        if status == "ok":
            clips.append(ClipResult.from_dict(payload))
            atomic_write_text(st, json.dumps({"fingerprint": fp, "status": "ok", "clip": payload}))
        else:
            failures.append({"source": src.name, "reason": payload})
            if on_failure:
                on_failure(src.name, payload)
            # failures are retried on a re-run: the file may have been fixed

    screener = None
    with progress_bar("screening", len(todo), enabled=progress) as advance:
        if workers > 1 and len(todo) > 1:
            per = max(1, (threads or os.cpu_count() or 1) // workers)
            # spawn, not fork: a forked child of a process whose torch or onnxruntime thread pools already
            # ran can deadlock on a lock held at fork time
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init,
                                     initargs=(str(bundle.folder), backend, asdict(s), per)) as pool:
                futs = {pool.submit(_worker_run, str(src.path), src.member, str(out), overlays): (src, st)
                        for src, st in todo}
                for fut in as_completed(futs):
                    src, st = futs[fut]
                    finish(src, st, *fut.result())
                    advance()
        elif todo:
            screener = Screener(bundle, backend, s, threads)
            for src, st in todo:
                finish(src, st, *_run_one(screener, src, out, overlays))
                advance()

    clips.sort(key=lambda c: c.source)
    exams = exam_results(clips, bundle.exam_threshold, s.exam_aggregate)
    if overlays != "none" and s.explain:
        hm_file = state_dir / HEAT_MAP_FILE
        hm = _load_state(hm_file, fp) or {"fingerprint": fp, "status": "ok", "done": {}, "seconds": 0.0}
        t_hm = time.perf_counter()

        def saved() -> None:
            nonlocal t_hm
            now = time.perf_counter()
            hm["seconds"] = round(hm.get("seconds", 0.0) + now - t_hm, 4)
            t_hm = now
            atomic_write_text(hm_file, json.dumps(hm))

        explain_exams(exams, clips, {src.name: src for src in sources}, out,
                      lambda: screener.explainer if screener is not None else bundle.classifier("torch"),
                      bundle.ingest_settings(), hm["done"], saved, progress)
    frames = [f.to_dict() for c in clips for f in c.frames]
    failures.sort(key=lambda f: f["source"])
    _write_outputs(out, bundle, exams, frames, failures, s, backend, report)
    return PredictReport(out, exams, frames, failures, len(todo), resumed, time.perf_counter() - t0)


def _load_state(path: Path, fp: str) -> dict | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if rec.get("fingerprint") == fp and rec.get("status") == "ok" else None


def _frame_row(f: dict) -> dict:
    box = f.get("valve_box") or [""] * 4
    return {**f, "valve_x1": box[0], "valve_y1": box[1], "valve_x2": box[2], "valve_y2": box[3]}


def _exam_row(e: dict) -> dict:
    iv = e.get("interval") or ["", ""]
    d = e.get("driving_frame") or {}
    return {**e, "interval_low": iv[0], "interval_high": iv[1], "driving_source": d.get("source", ""),
            "driving_frame": d.get("frame_index", ""), "sources": ";".join(e["sources"]),
            "probability": "" if e["probability"] is None else e["probability"]}


def _write_outputs(out: Path, bundle: Bundle, exams: list[dict], frames: list[dict], failures: list[dict],
                   s: ScreeningSettings, backend: str, report: bool) -> None:
    def blank(rows):
        return [{k: ("" if v is None else v) for k, v in r.items()} for r in rows]

    atomic_write_text(out / "frames.csv", csv_text(FRAME_COLUMNS, blank([_frame_row(f) for f in frames])))
    atomic_write_text(out / "exams.csv", csv_text(EXAM_COLUMNS, blank([_exam_row(e) for e in exams])))
    atomic_write_text(out / "failures.csv", csv_text(["source", "reason"], failures))
    doc = {"model": bundle.card(), "bundle": str(bundle.folder), "backend": backend, "settings": asdict(s),
           "exams": exams, "frames": frames, "failures": failures}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=1, default=str) + "\n")
    if report:
        from echoavc.report import write_report

        write_report(out, exams, frames, {**bundle.card(), "backend": backend}, failures)


__all__ = ["predict", "Screener", "FrameResult", "ClipResult", "exam_results", "exam_id_of", "screen_input",
           "PredictReport", "STATUS_TEXT"]
