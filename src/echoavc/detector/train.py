"""Train the valve detector on a materialised YOLO folder (``echoavc dataset materialise``).

Every Ultralytics setting that matters is passed explicitly (nothing is read from Ultralytics' own settings
file): the run folder is ``out/train`` (weights in ``out/train/weights``), ``plots=False``, ``val=True`` on the
folder's ``val`` part, a fixed seed with deterministic ops, ``amp=False`` (Ultralytics' AMP check downloads a
model), and the online augmentation either the configured values or all zero.
Afterwards torch gets all cores back (Ultralytics drops it to one thread), the checkpoints carry an
``echoavc`` entry naming the model as built, and ``out/detector.json`` records what was done.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from echoavc import runtime
from echoavc.files import atomic_write_text, atomic_write_with, progress_bar
from echoavc.detector.model import WeightsChoice, built_name, describe, resolve_weights, yaml_name
from echoavc.errors import EchoAVCError, EchoAVCWarning
from echoavc.weights import starting_record
from echoavc.settings import DetectorSettings

RUN_FILE = "detector.json"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass
class TrainResult:
    out: Path
    best: Path
    last: Path
    model_name: str  #: e.g. "yolov5nu, from scratch"
    info: dict  #: what detector.json holds
    warning: str | None = None

    @property
    def metrics_file(self) -> Path:
        return self.out / RUN_FILE


def pick_device(device: str = "") -> str:
    """``device`` as given, else ``"0"`` (the first GPU) when CUDA is there, else ``"cpu"``."""
    if device:
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def set_threads(threads: int = 0) -> int:
    """Torch threads: ``threads``, or every available core for 0 (Ultralytics lowers it on every call)."""
    n = runtime.all_cores()
    if threads and threads != n:
        import torch

        torch.set_num_threads(threads)
        return threads
    return n


def read_data_yaml(data: str | Path) -> dict:
    """The dataset file as a dict; checks that it names a train and a val part that exist."""
    import yaml

    p = Path(data)
    if p.is_dir():
        p = p / "data.yaml"
    if not p.is_file():
        raise EchoAVCError("no data.yaml here (make one with echoavc dataset materialise)", p)
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EchoAVCError(f"not a readable YAML file ({exc.__class__.__name__})", p) from None
    root = Path(d.get("path") or p.parent)
    if not root.is_absolute():
        root = p.parent / root
    for part in ("train", "val"):
        if not d.get(part):
            raise EchoAVCError(f"data.yaml names no {part} part", p)
        if not (root / d[part]).is_dir():
            raise EchoAVCError(f"the {part} images folder {root / d[part]} does not exist", p)
    if int(d.get("nc", 1)) != 1:
        raise EchoAVCError(f"the detector has one class (aortic valve), data.yaml has nc={d.get('nc')}", p)
    d["_file"], d["_root"] = p, root
    return d


class _RamCacheWarning(logging.Filter):
    """Drops Ultralytics' warning that ``cache='ram'`` "may produce non-deterministic training results" while the
    data loads in the training process (``workers=0``): two demo trainings from empty folders wrote the same
    weights (docs/screening.md), so the warning would only alarm the user. With loader processes it stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "cache='ram' may produce non-deterministic" not in record.getMessage()


def count_images(folder: Path) -> int:
    return sum(1 for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else 0


def ultralytics_args(settings: DetectorSettings, data_file: Path, out: Path, device: str,
                     choice: WeightsChoice, verbose: bool = False) -> dict:
    """Every argument given to ``YOLO.train``."""
    args = dict(
        data=str(data_file), project=str(out.resolve()), name="train", exist_ok=True,
        pretrained=str(choice.path) if choice.path else False,
        epochs=settings.epochs, imgsz=settings.imgsz, batch=settings.batch, device=device,
        workers=settings.workers, seed=settings.seed, deterministic=True, amp=False, plots=False, val=True,
        patience=settings.patience if settings.patience > 0 else settings.epochs + 1,
        optimizer=settings.optimizer, lr0=settings.lr, warmup_epochs=settings.warmup_epochs,
        cache="ram" if settings.cache else False, single_cls=False, rect=False, cos_lr=False,
        save=True, save_period=-1, verbose=verbose, time=settings.time_hours, fraction=1.0,
        **settings.augment.ultralytics_args(settings.online_augment),
    )
    extra = []
    if settings.domain_randomisation:
        from echoavc.detector.domain import domain_randomisation_transforms

        extra += domain_randomisation_transforms()
    if settings.style_from:
        from echoavc.detector.domain import style_transforms

        extra += style_transforms(settings.style_from, settings.style_method, settings.style_p)
    if extra:
        args["augmentations"] = extra
    return args


def stamp_checkpoint(path: Path, meta: dict) -> None:
    """Add an ``echoavc`` entry (model as built, weights origin, image size) to an Ultralytics checkpoint."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["echoavc"] = meta
    atomic_write_with(path, lambda tmp: torch.save(ckpt, tmp))


def _results_rows(csv_path: Path) -> list[dict]:
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as f:
        rows = []
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                try:
                    row[k.strip()] = float(v)
                except (TypeError, ValueError):
                    row[k.strip()] = v
            rows.append(row)
        return rows


def hardware() -> dict:
    info = runtime.machine()
    try:
        import ultralytics

        info["ultralytics"] = ultralytics.__version__
    except ImportError:
        pass
    return info


def train(data: str | Path, out: str | Path, settings: DetectorSettings | None = None,
          weights: str | Path | None = None, verbose: bool = False, progress: bool = True) -> TrainResult:
    """Train on the YOLO folder ``data`` (or its data.yaml) into ``out``; see the module docstring.

    ``verbose``: Ultralytics' own output (settings, model table, a bar per epoch); otherwise only its warnings and
    one progress bar over the epochs (``progress``).
    """
    runtime.configure()
    settings = settings or DetectorSettings()
    d = read_data_yaml(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    choice = resolve_weights(settings.model, weights, settings.pretrained)
    if choice.warning:
        warnings.warn(choice.warning, EchoAVCWarning, stacklevel=2)
    name = describe(settings.model, choice)
    device = pick_device(settings.device)
    args = ultralytics_args(settings, d["_file"], out, device, choice, verbose)

    from ultralytics import YOLO

    n_train = count_images(d["_root"] / d["train"])
    n_val = count_images(d["_root"] / d["val"])
    if n_train == 0:
        raise EchoAVCError("no training images", d["_root"] / d["train"])
    model = YOLO(yaml_name(settings.model))
    # Ultralytics sets torch to cores - 1 threads when it picks the CPU (one thread on two cores): take them all
    model.add_callback("on_pretrain_routine_start", lambda trainer: set_threads(settings.threads))
    model.add_callback("on_val_start", lambda validator: set_threads(settings.threads))
    epoch_seconds: list[float] = []  # training passes only (no validation), for the speed benchmark
    clock = {}
    model.add_callback("on_train_epoch_start", lambda trainer: clock.__setitem__("t", time.perf_counter()))
    model.add_callback("on_train_epoch_end",
                       lambda trainer: epoch_seconds.append(round(time.perf_counter() - clock["t"], 3)))
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    if not verbose:
        LOGGER.setLevel(logging.WARNING)  # also turns off its progress bars
    quiet = _RamCacheWarning() if settings.workers == 0 else None
    if quiet is not None:
        LOGGER.addFilter(quiet)
    t0 = time.perf_counter()
    try:
        # its image-caching bar ignores the log level and writes to stdout (a user's --no-progress run showed
        # it): stdout is a sink meanwhile; its log and our bar (stderr) keep their streams
        with progress_bar(f"detector epochs ({name})", settings.epochs, progress and not verbose) as advance, \
                (contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())):
            model.add_callback("on_fit_epoch_end", lambda trainer: advance())
            model.train(**args)
    finally:
        LOGGER.setLevel(level)
        if quiet is not None:
            LOGGER.removeFilter(quiet)
        runtime.all_cores()
    seconds = time.perf_counter() - t0
    save_dir = Path(model.trainer.save_dir)
    best, last = save_dir / "weights" / "best.pt", save_dir / "weights" / "last.pt"
    if not last.is_file():
        raise EchoAVCError("training wrote no weights", save_dir)
    if not best.is_file():
        best = last
    rows = _results_rows(save_dir / "results.csv")
    epochs_run = len(rows) or settings.epochs
    meta = {"model_name": name, "model": built_name(settings.model), "built_from": yaml_name(settings.model),
            "weights_origin": choice.origin, "starting_weights": starting_record(choice.path),
            "imgsz": settings.imgsz, "data": str(Path(d["_file"]).resolve())}
    for p in {best, last}:
        stamp_checkpoint(p, meta)
    final = {}
    val_metrics = getattr(getattr(model.trainer, "validator", None), "metrics", None)
    if val_metrics is not None and hasattr(val_metrics, "results_dict"):
        final = {k: float(v) for k, v in val_metrics.results_dict.items()}
    info = {
        "format": "echoavc-detector-run/1",
        **meta,
        "weights_warning": choice.warning,
        "best": str(best), "last": str(last),
        "settings": asdict(settings),
        "ultralytics_args": {k: v for k, v in args.items() if k != "augmentations"},
        "augmentations": [type(t).__name__ for t in args.get("augmentations", [])],
        "dataset": {k: v for k, v in d.items() if not k.startswith("_")},
        "images": {"train": n_train, "val": n_val},
        "device": device,
        "hardware": hardware(),
        "epochs_run": epochs_run,
        "train_seconds": round(seconds, 2),
        "seconds_per_image_epoch": round(seconds / max(1, n_train * epochs_run), 5),
        "epoch_seconds": epoch_seconds,
        "train_pass_seconds_per_image": round(sorted(epoch_seconds)[len(epoch_seconds) // 2] / n_train, 5)
        if epoch_seconds else None,
        "ultralytics_val_on_best": final,
        "epochs": rows,
    }
    atomic_write_text(out / RUN_FILE, json.dumps(info, indent=1, default=str) + "\n")
    return TrainResult(out, best, last, name, info, choice.warning)


def with_overrides(settings: DetectorSettings, **kw) -> DetectorSettings:
    """``dataclasses.replace`` ignoring None values (CLI options left out)."""
    return replace(settings, **{k: v for k, v in kw.items() if v is not None})


def train_from_table(table, split, out: str | Path, settings: DetectorSettings | None = None,
                     fold: int | None = None, augmentation: str | tuple = "original", protocol: str = "patient",
                     weights: str | Path | None = None, verbose: bool = False, overwrite: bool = True,
                     progress: bool = True) -> TrainResult:
    """Materialise ``table`` for ``split`` / ``fold`` / ``augmentation`` into ``out/data`` (YOLO folder, no crops,
    background frames with empty labels), then :func:`train` into ``out``."""
    from echoavc.dataset.folders import materialise

    out = Path(out)
    rep = materialise(table, split, out / "data", fold=fold, augmentation=augmentation, protocol=protocol,
                      crops=False, overwrite=overwrite)
    result = train(rep.out, out, settings, weights, verbose, progress)
    result.info["materialised"] = {k: rep.meta.get(k) for k in ("protocol", "leaky", "augmentation", "fold",
                                                                  "split_fingerprint", "counts", "rejected", "checks")}
    atomic_write_text(out / RUN_FILE, json.dumps(result.info, indent=1, default=str) + "\n")
    return result
