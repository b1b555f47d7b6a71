"""Model bundles: both stages, their preprocessing, calibration, thresholds and provenance in one folder.

A bundle is what ``echoavc train`` writes and ``echoavc predict`` reads::

    BUNDLE/bundle.json                      format, preprocessing, screening settings and thresholds,
                                            provenance, validation metrics, sha256 of every file below
    BUNDLE/detector.safetensors(.json)      the valve detector: weights + architecture (no pickle)
    BUNDLE/detector.onnx                    the same network for onnxruntime
    BUNDLE/detector.int8.onnx               int8 copies of both ONNX models (format 3; --backend int8),
    BUNDLE/classifier/model.int8.onnx       calibrated on validation frames (echoavc.quantise)
    BUNDLE/classifier/model.safetensors     the calcification classifier, classifier.json (crop,
    BUNDLE/classifier/classifier.json       normalisation, calibration, frame threshold), model.onnx
    BUNDLE/classifier/model.onnx            (outputs: logits, and the pooled features the grade head reads)
    BUNDLE/classifier/grade.*               the severity grade head, when the labels had grades (optional)
    BUNDLE/grade.json                       the grade head's summary, or "grade: not trained (no grades in
                                            the labels)" (a file, so bundle.json keeps format 2's shape)
    BUNDLE/views/model.safetensors          the view model (optional; echoavc.views): views.json (classes,
    BUNDLE/views/views.json                 input size, its validation figures, labelled optimistic) and
    BUNDLE/views/model.onnx                 model.onnx; without it every clip is screened, as before
    BUNDLE/validation/...                   the validation report (used for model selection; optimistic)
    BUNDLE/test/...                         the test report: ``echoavc evaluate`` on the split's test part, once
    BUNDLE/MODEL_CARD.md

Ultralytics and PyTorch checkpoints are pickles, and unpickling a file runs whatever code it names, so a
bundle holds safetensors, ONNX and JSON only, and :func:`load_bundle` refuses any file that is a pickle
(whatever its name), any file whose hash differs from the one recorded, a format it does not know, and
preprocessing settings that disagree between the parts or with what the caller asks for.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_folder, atomic_write_text
from echoavc.model_card import RESEARCH_ONLY, VALIDATION_LABEL, grade_card, model_card_markdown, views_card
from echoavc.preprocess.record import Preprocessing
from echoavc.quantise import write_int8_models
from echoavc.settings import ConeSettings, IngestSettings, ScreeningSettings, from_dict

#: format 2 adds ``test_summary`` (the held-out test report's headline figures, or null) and ``test/``;
#: format 3 adds ``screening.frames``, the frame policy (issue 16: which frames predict screens and the exam
#: threshold was chosen on; formats 1 and 2 screened every frame, and load so: "all"), and ``int8`` (null, or the
#: record of the int8 ONNX copies ``detector.int8.onnx``, ``classifier/model.int8.onnx``, and how many
#: validation frames and crops set their ranges); and ``classifier/model.onnx`` has a second output,
#: ``features`` (the pooled backbone features), which the grade head reads, so there is no
#: ``classifier/grade.onnx`` (format 2 held one: a second copy of the backbone)
BUNDLE_FORMAT = "echoavc-bundle/3"
#: the formats :func:`load_bundle` reads (format 1 has no test report, formats 1-2 no frame policy nor int8 models;
#: a format-2 bundle's grade head runs on its own grade.onnx)
READABLE_FORMATS = (BUNDLE_FORMAT, "echoavc-bundle/2", "echoavc-bundle/1")
#: the backends a bundle can screen with; ``int8``: onnxruntime on the int8 copies (format 3 bundles that have them)
BUNDLE_BACKENDS = ("auto", "torch", "onnx", "int8")
BUNDLE_FILE = "bundle.json"
DETECTOR_STATE = "detector.safetensors"
DETECTOR_ONNX = "detector.onnx"
CLASSIFIER_DIR = "classifier"
INGEST_FILE = "ingest.json"
GRADE_FILE = "grade.json"
VIEWS_DIR = "views"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def looks_like_pickle(path: Path) -> bool:
    """True for a raw pickle (protocol 2+ starts with 0x80) or a zip holding one (PyTorch's ``.pt`` format)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as zf:
                return any(n.endswith(".pkl") or n.endswith("/data.pkl") for n in zf.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def preprocessing_of(ingest: IngestSettings, detector_imgsz: int, classifier_meta: dict) -> dict:
    """The settings that must be the same at training and screening time, as bundle.json's JSON record."""
    return Preprocessing.of(ingest, detector_imgsz, classifier_meta).to_dict()


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def _differences(want: dict, have: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(want) | set(have)):
        a, b = want.get(k), have.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {b!r} (expected {a!r})")
    return out


@dataclass
class Bundle:
    """A loaded bundle: its record plus lazily built models."""

    folder: Path
    meta: dict

    @property
    def preprocessing(self) -> dict:
        """bundle.json's preprocessing record as stored (:meth:`preprocess` reads it)."""
        return self.meta["preprocessing"]

    def preprocess(self) -> Preprocessing:
        return Preprocessing.from_dict(self.preprocessing)

    @property
    def screening(self) -> ScreeningSettings:
        # a bundle made before the frame policy (format 1 or 2) screened every frame and chose its exam threshold
        # so: it keeps doing that ("frames" absent -> "all")
        return from_dict(ScreeningSettings, {"frames": "all", **self.meta["screening"]}, self.folder / BUNDLE_FILE)

    @property
    def frame_threshold(self) -> float:
        return float(self.meta["thresholds"]["frame"])

    @property
    def exam_threshold(self) -> float:
        return float(self.meta["thresholds"]["exam"])

    @property
    def has_onnx(self) -> bool:
        return (self.folder / DETECTOR_ONNX).is_file() and (self.folder / CLASSIFIER_DIR / "model.onnx").is_file()

    @property
    def has_int8(self) -> bool:
        """True when the bundle holds int8 copies of both ONNX models (listed in its files)."""
        from echoavc.quantise import INT8_CLASSIFIER, INT8_DETECTOR

        files = self.meta.get("files", {})
        return bool(self.meta.get("int8")) and INT8_DETECTOR in files and f"{CLASSIFIER_DIR}/{INT8_CLASSIFIER}" in files

    def ingest_settings(self) -> IngestSettings:
        """The ingest settings the models were trained with (standard size, frames kept, cone finder)."""
        return self.preprocess().ingest_settings()

    def backend(self, backend: str = "auto") -> str:
        """``auto``: ONNX when the bundle has it, else PyTorch. ``int8`` is asked for by name: on the demo bundle
        its boxes moved enough to change 6% of frame decisions (docs/benchmarks.md)."""
        if backend not in BUNDLE_BACKENDS:
            raise EchoAVCError(f"backend must be one of {', '.join(BUNDLE_BACKENDS)}, not {backend!r}")
        if backend == "auto":
            return "onnx" if self.has_onnx else "torch"
        if backend in ("onnx", "int8") and not self.has_onnx:
            raise EchoAVCError("this bundle holds no ONNX exports: use --backend torch", self.folder)
        if backend == "int8" and not self.has_int8:
            raise EchoAVCError("this bundle holds no int8 models (made before format 3, or without calibration "
                               "frames): use --backend onnx", self.folder)
        return backend

    def detector(self, backend: str = "auto", threads: int = 0):
        from echoavc.detector.predict import Detector
        from echoavc.settings import DetectorSettings

        from echoavc.quantise import INT8_DETECTOR

        b = self.backend(backend)
        path = self.folder / {"onnx": DETECTOR_ONNX, "int8": INT8_DETECTOR}.get(b, DETECTOR_STATE)
        d = self.meta.get("detector", {})
        settings = DetectorSettings(conf=float(self.meta["screening"]["valve_conf"]),
                                    min_score=float(d.get("min_score", DetectorSettings.min_score)),
                                    nms_iou=float(d.get("nms_iou", DetectorSettings.nms_iou)), threads=threads)
        return Detector(path, backend="torch" if b == "torch" else "onnx", settings=settings)

    def classifier(self, backend: str = "auto", threads: int = 0):
        from echoavc.classifier.predict import Classifier
        from echoavc.quantise import INT8_CLASSIFIER

        b = self.backend(backend)
        if b == "int8":
            return Classifier.load(self.folder / CLASSIFIER_DIR, backend="onnx", threads=threads,
                                   onnx_file=INT8_CLASSIFIER)
        return Classifier.load(self.folder / CLASSIFIER_DIR, backend=b, threads=threads)

    @property
    def has_grade(self) -> bool:
        """True when the bundle holds a grade head (listed in its files; bundles made before it have none)."""
        return f"{CLASSIFIER_DIR}/grade.json" in self.meta.get("files", {})

    @property
    def grade_info(self) -> dict | None:
        """The grade record (summary, or the "not trained" note); None for a bundle made before grades existed."""
        if GRADE_FILE not in self.meta.get("files", {}):
            return None
        return json.loads((self.folder / GRADE_FILE).read_text())

    @property
    def grade_pooling(self) -> dict | None:
        """How exams pool their frames' grade probabilities (the head's ``exam_pooling``; None: the arithmetic
        mean, as heads fitted before the pooling rule, and bundles without a head)."""
        if not self.has_grade:
            return None
        return json.loads((self.folder / CLASSIFIER_DIR / "grade.json").read_text()).get("exam_pooling")

    def grader(self, backend: str = "auto", threads: int = 0, classifier=None):
        """The grade head (``echoavc.classifier.grade.GradeModel``), or None when the bundle has none.

        It reads the pooled features of ``classifier`` (this bundle's, loaded here when not given) when that
        network gives them in the same pass as its logits (PyTorch; the ONNX graph of format 3), so the backbone
        runs once per crop. A format-2 bundle's ONNX graph gives logits only: the head then runs on its own
        grade.onnx, or PyTorch when that is missing (nothing is written here)."""
        if not self.has_grade:
            return None
        from echoavc.classifier.grade import GradeModel

        b = self.backend(backend)
        clf = classifier if classifier is not None else self.classifier(b, threads)
        if clf.has_features:
            return GradeModel.on_classifier(self.folder / CLASSIFIER_DIR, clf)
        b = "onnx" if b == "int8" else b  # a format-2 grade graph is small: float ONNX
        if b == "onnx" and not (self.folder / CLASSIFIER_DIR / "grade.onnx").is_file():
            b = "torch"
        return GradeModel.load(self.folder / CLASSIFIER_DIR, backend=b, threads=threads)

    @property
    def has_views(self) -> bool:
        """True when the bundle holds a view model (listed in its files; bundles made before it have none)."""
        return f"{VIEWS_DIR}/views.json" in self.meta.get("files", {})

    def view_model(self, backend: str = "auto", threads: int = 0):
        """The view model (``echoavc.views.model.ViewModel``), or None when the bundle has none: then every clip
        is screened, as bundles made before views were."""
        if not self.has_views:
            return None
        from echoavc.views.model import ViewModel

        b = self.backend(backend)
        if b == "onnx" and not (self.folder / VIEWS_DIR / "model.onnx").is_file():
            b = "torch"
        return ViewModel.load(self.folder / VIEWS_DIR, backend=b, threads=threads)

    def card(self) -> dict:
        """The model card shown in reports: what it is, how it was made and validated, its limits."""
        m = self.meta
        if self.has_views:
            extra = {"views": views_card(json.loads((self.folder / VIEWS_DIR / "views.json").read_text()))}
        else:
            extra = {}
        return extra | {
            "intended_use": RESEARCH_ONLY,
            "name": m.get("name", self.folder.name),
            "created": m.get("created"),
            "echoavc_version": m.get("versions", {}).get("echoavc"),
            "detector": m.get("detector", {}).get("model_name"),
            "classifier": m.get("classifier", {}),
            "thresholds": m.get("thresholds"),
            "screening": m.get("screening"),
            "training_data": m.get("training"),
            "validation": m.get("validation_summary"),
            "test": m.get("test_summary"),
            "limitations": m.get("limitations"),
            "grade": grade_card(self.grade_info),
        }


def save_bundle(out: str | Path, *, detector_weights: str | Path, classifier_dir: str | Path,
                ingest: IngestSettings, screening: ScreeningSettings, exam_threshold: float,
                training: dict | None = None, validation: dict | None = None, validation_files: dict | None = None,
                detector_settings=None, name: str | None = None, onnx: bool = True,
                limitations: list[str] | None = None, test: dict | None = None,
                test_files: dict | None = None, views_dir: str | Path | None = None,
                int8: tuple | None = None) -> Path:
    """Assemble a bundle from a trained detector checkpoint and classifier folder; returns its folder.

    ``int8``: (standard frames, prepared valve crops, where they come from) of the validation patients: with
    ``onnx``, int8 copies of both ONNX models are calibrated on them (:mod:`echoavc.quantise`); no image is kept.

    The folder is built beside ``out`` and renamed into place, so an interrupted save leaves no half bundle
    (:func:`echoavc.files.atomic_folder`). ``views_dir``: a view model folder (``echoavc views train``) to include.
    """
    from echoavc.classifier.predict import Classifier, member_count, read_meta
    from echoavc.detector.export import export_onnx, export_state
    from echoavc.detector.predict import Detector
    from echoavc.runtime import versions
    from echoavc.weights import classifier_start, detector_start

    out = Path(out)
    with atomic_folder(out) as tmp:
        export_state(detector_weights, tmp / DETECTOR_STATE)
        state_detector = Detector(tmp / DETECTOR_STATE, backend="torch")
        imgsz = state_detector.imgsz
        if onnx:
            export_onnx(detector_weights, tmp / DETECTOR_ONNX)
        cdir = tmp / CLASSIFIER_DIR
        cdir.mkdir()
        src = Path(classifier_dir)
        for f in ("model.safetensors", "classifier.json", "reliability_validation.png", "grade.safetensors",
                  "grade.json"):
            if (src / f).is_file():
                shutil.copy2(src / f, cdir / f)
        cmeta = read_meta(cdir)
        if onnx:
            Classifier.load(cdir, backend="onnx")  # exports model.onnx (logits + features) beside the weights
        from echoavc.classifier.grade import grade_note

        if views_dir is not None:
            from echoavc.views.model import ViewModel

            vdir = tmp / VIEWS_DIR
            vdir.mkdir()
            for f in ("model.safetensors", "views.json"):
                shutil.copy2(Path(views_dir) / f, vdir / f)
            if onnx:
                ViewModel.load(vdir, backend="onnx")  # exports model.onnx beside the weights
        files = [("validation", rel, c) for rel, c in (validation_files or {}).items()]
        files += [("test", rel, c) for rel, c in (test_files or {}).items()]
        for where, rel, content in files:
            p = tmp / where / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, (str, Path)) and Path(content).is_file():
                shutil.copy2(content, p)
            else:
                p.write_text(content if isinstance(content, str) else json.dumps(content, indent=1, default=str))
        d = detector_settings
        meta = {
            "format": BUNDLE_FORMAT,
            "name": name or out.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "intended_use": RESEARCH_ONLY,
            "versions": versions(),
            "preprocessing": preprocessing_of(ingest, imgsz, cmeta),
            "screening": asdict(screening),
            "thresholds": {"frame": float(cmeta["threshold"]), "frame_rule": cmeta.get("threshold_rule"),
                           "exam": float(exam_threshold), "exam_rule": screening.exam_threshold_rule,
                           "min_recall": screening.min_recall},
            "detector": {"model_name": state_detector.name, "imgsz": imgsz,
                         "min_score": getattr(d, "min_score", 0.001), "nms_iou": getattr(d, "nms_iou", 0.7),
                         "starting_weights": detector_start(detector_weights)},
            "classifier": {k: cmeta.get(k) for k in ("backbone", "pooling", "input_size", "weights_source")}
            | {"calibration": (cmeta.get("calibration") or {}).get("method"),
               "calibration_data": cmeta.get("calibration_data"), "starting_weights": classifier_start(cmeta)},
            "training": _jsonable(training or {}),
            "validation_summary": _jsonable(validation or {}),
            "test_summary": _jsonable(test) if test is not None else None,
            "limitations": limitations or [],
            "int8": write_int8_models(tmp, *int8, imgsz) if onnx and int8 is not None else None,
        }
        grade = grade_note(cdir)
        (tmp / GRADE_FILE).write_text(json.dumps(grade, indent=1, default=str) + "\n")
        # the test boxes live in classifier/classifier.json (bundle.json keeps its format's shape)
        card_md = model_card_markdown(meta, grade, test_boxes=int((cmeta.get("crop") or {}).get("test_boxes", 1)),
                                      members=member_count(cmeta))
        if views_dir is not None:
            card_md += "\n## View model\n" + views_card(json.loads((tmp / VIEWS_DIR / "views.json").read_text())) + "\n"
        (tmp / "MODEL_CARD.md").write_text(card_md)
        # the ingest settings again, in a hashed file: bundle.json's copy is checked against it on loading
        (tmp / INGEST_FILE).write_text(json.dumps(Preprocessing.of(ingest, imgsz, cmeta).ingest_part(), indent=1) + "\n")
        meta["files"] = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        atomic_write_text(tmp / BUNDLE_FILE, json.dumps(meta, indent=1, default=str) + "\n")
    return out


def add_int8(src: str | Path, out: str | Path, frames, crops, source: str) -> Path:
    """A copy of bundle ``src`` (with ONNX exports) at ``out``, in the current format, with int8 models calibrated
    on ``frames`` and ``crops`` (for bundles made before format 3; ``echoavc train`` does this itself)."""
    b = load_bundle(src)
    if not b.has_onnx:
        raise EchoAVCError("this bundle holds no ONNX exports to quantise", b.folder)
    with atomic_folder(Path(out)) as tmp:
        shutil.copytree(b.folder, tmp, dirs_exist_ok=True)
        meta = dict(b.meta)
        meta["format"] = BUNDLE_FORMAT
        meta.setdefault("test_summary", None)
        meta["int8"] = write_int8_models(tmp, frames, crops, source, int(meta["preprocessing"]["detector_imgsz"]))
        meta["files"] = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*"))
                         if p.is_file() and p.name != BUNDLE_FILE}
        atomic_write_text(tmp / BUNDLE_FILE, json.dumps(meta, indent=1, default=str) + "\n")
    return Path(out)


def load_bundle(path: str | Path, ingest: IngestSettings | None = None, verify: bool = True) -> Bundle:
    """Read and check a bundle. ``ingest``: the ingest settings the caller will use; refused unless they are
    the bundle's. Raises EchoAVCError (one line, naming the file) for anything unsafe or inconsistent."""
    folder = Path(path)
    if folder.is_file() and folder.name == BUNDLE_FILE:
        folder = folder.parent
    if not folder.is_dir():
        raise EchoAVCError("no such model bundle folder (echoavc train writes one)", folder)
    meta_path = folder / BUNDLE_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise EchoAVCError(f"not a model bundle: no {BUNDLE_FILE}", folder) from None
    except (OSError, ValueError) as exc:
        raise EchoAVCError(f"unreadable {BUNDLE_FILE} ({type(exc).__name__})", meta_path) from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt not in READABLE_FORMATS:
        raise EchoAVCError(f"bundle format {fmt!r} is not {BUNDLE_FORMAT!r}: it was made by an incompatible "
                           "echoavc version; retrain it or use the version that made it", meta_path)
    for key in ("preprocessing", "screening", "thresholds", "files"):
        if not isinstance(meta.get(key), dict):
            raise EchoAVCError(f"bundle record has no {key!r} section", meta_path)
    if verify:
        _verify_files(folder, meta["files"])
    bundle = Bundle(folder, meta)
    _check_preprocessing(bundle, ingest)
    try:
        bundle.screening
    except TypeError as exc:
        raise EchoAVCError(f"unknown screening setting ({exc})", meta_path) from None
    return bundle


def _verify_files(folder: Path, files: dict) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != BUNDLE_FILE and looks_like_pickle(p):
            raise EchoAVCError("refused: the bundle contains a pickle (unpickling can run arbitrary code); "
                               "bundles hold safetensors, ONNX and JSON only", p)
    for rel, digest in files.items():
        p = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise EchoAVCError(f"refused: file entry {rel!r} points outside the bundle", folder / BUNDLE_FILE)
        if not p.is_file():
            raise EchoAVCError("bundle file missing", p)
        if _sha256(p) != digest:
            raise EchoAVCError("refused: file changed since the bundle was made (sha256 differs)", p)
    for need in (DETECTOR_STATE, INGEST_FILE, f"{CLASSIFIER_DIR}/model.safetensors",
                 f"{CLASSIFIER_DIR}/classifier.json"):
        if need not in files:
            raise EchoAVCError(f"incomplete bundle: {need} is not listed (made by an older echoavc? make it "
                               "again with echoavc train)", folder / BUNDLE_FILE)


def _check_preprocessing(bundle: Bundle, ingest: IngestSettings | None) -> None:
    """The preprocessing record must agree with the classifier's and the detector's own, and with the caller's."""
    from echoavc.classifier.predict import read_meta
    from echoavc.detector.export import state_arch_path

    folder = bundle.folder
    pre = bundle.preprocessing
    cmeta = read_meta(folder / CLASSIFIER_DIR)
    try:
        arch = json.loads(state_arch_path(folder / DETECTOR_STATE).read_text())
    except (OSError, ValueError):
        raise EchoAVCError("unreadable detector architecture", state_arch_path(folder / DETECTOR_STATE)) from None
    try:
        rec = json.loads((folder / INGEST_FILE).read_text())
        ingest_own = IngestSettings(size=rec["standard_size"], every_nth=rec["every_nth"],
                                    cone=from_dict(ConeSettings, rec["cone"], folder / INGEST_FILE))
        own = preprocessing_of(ingest_own, int(arch.get("imgsz", -1)), cmeta)
    except (OSError, ValueError):
        raise EchoAVCError("missing or unreadable preprocessing record", folder / INGEST_FILE) from None
    except (KeyError, TypeError) as exc:
        raise EchoAVCError(f"incomplete preprocessing record ({exc})", folder / BUNDLE_FILE) from None
    diff = _differences(own, pre)
    if diff:
        raise EchoAVCError("refused: preprocessing in bundle.json disagrees with the models' own: "
                           + "; ".join(diff[:4]), folder / BUNDLE_FILE)
    if ingest is not None:
        asked = preprocessing_of(ingest, own["detector_imgsz"], cmeta)
        diff = _differences(pre, asked)
        if diff:
            raise EchoAVCError("refused: the bundle was trained with other preprocessing: "
                               + "; ".join(d.replace("expected", "bundle") for d in diff[:4]), folder)


def with_screening(bundle: Bundle, **overrides) -> ScreeningSettings:
    """The bundle's screening settings with typed overrides (None values ignored)."""
    return replace(bundle.screening, **{k: v for k, v in overrides.items() if v is not None})


__all__ = ["Bundle", "BUNDLE_FORMAT", "BUNDLE_BACKENDS", "add_int8", "READABLE_FORMATS", "VALIDATION_LABEL", "save_bundle", "load_bundle", "looks_like_pickle", "preprocessing_of",
           "RESEARCH_ONLY", "with_screening", "Preprocessing"]
