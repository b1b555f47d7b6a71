"""bench_predict.py's inputs: synthetic DICOM cohorts and the untrained, same-architecture bundles (reused
from --work by later runs); and its log line."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()[0]:.1f}] {msg}", flush=True)



# ---------------------------------------------------------------- inputs


def cohort(out: Path, patients: int, seed: int, **kw) -> list[Path]:
    """A synthetic cohort (made once, reused when its parameters match); returns its DICOM files."""
    from echoavc.synth.cohort import make_cohort

    want = {"patients": patients, "seed": seed, **kw}
    stamp = out / "bench_params.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == want):
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        make_cohort(out, patients, seed, progress=False, **kw)
        stamp.write_text(json.dumps(want))
        log(f"made {out.name}: {patients} patients {kw} in {time.perf_counter() - t:.0f} s")
    return sorted((out / "dicom").rglob("*.dcm"))


def n_frames(files) -> int:
    import pydicom

    return sum(int(getattr(pydicom.dcmread(f, stop_before_pixels=True), "NumberOfFrames", 1) or 1) for f in files)


# ---------------------------------------------------------------- the untrained, same-architecture bundles


def detector_checkpoint(path: Path, model: str = "yolov5s", imgsz: int = 640) -> Path:
    """An untrained Ultralytics checkpoint (one class), the way Ultralytics' own .pt files look."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from echoavc import runtime
    from echoavc.detector.model import built_name, checkpoint_info, yaml_name

    if path.is_file():
        return path
    runtime.configure()
    torch.manual_seed(0)
    net = DetectionModel(yaml_name(model), ch=3, nc=1, verbose=False)
    net.names = {0: "aortic_valve"}
    runtime.all_cores()
    ckpt = {"model": net, "ema": None, "train_args": {"imgsz": imgsz},
            "echoavc": {"imgsz": imgsz, "model_name": f"{built_name(model)}, untrained (random weights: timing only)"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    info = checkpoint_info(path)
    assert info["model"] == model, info
    return path


def bundle_checkpoint(bundle: Path, path: Path) -> Path:
    """The bundle's detector as an Ultralytics checkpoint (``.pt``), rebuilt from its safetensors + architecture,
    so the glue runs the very network the bundle holds (remade when the bundle's weights change)."""
    import hashlib

    import torch
    from safetensors.torch import load_file
    from ultralytics.nn.tasks import DetectionModel

    from echoavc import runtime

    state_file = bundle / "detector.safetensors"
    stamp = path.with_suffix(".sha256")
    digest = hashlib.sha256(state_file.read_bytes()).hexdigest()
    if path.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return path
    arch = json.loads((bundle / "detector.safetensors.json").read_text())
    runtime.configure()
    names = {int(k): v for k, v in arch["names"].items()}
    net = DetectionModel(cfg=dict(arch["yaml"]), ch=3, nc=len(names), verbose=False)
    net.load_state_dict(load_file(str(state_file)))
    net.names = names
    runtime.all_cores()
    ckpt = {"model": net, "ema": None, "train_args": {"imgsz": arch["imgsz"]},
            "echoavc": {"imgsz": arch["imgsz"], "model_name": arch.get("model_name")}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    stamp.write_text(digest)
    return path


def classifier_folder(out: Path, backbone: str = "mobilenetv3_large_100", size: int = 224) -> Path:
    """An untrained classifier saved with echoavc's own ``save_model`` (so ``Classifier.load`` reads it)."""
    import torch

    from echoavc.classifier.calibrate import Calibration
    from echoavc.classifier.model import build
    from echoavc.classifier.train import Trained, save_model
    from echoavc.settings import ClassifierSettings, CropSettings

    if (out / "classifier.json").is_file():
        return out
    s = ClassifierSettings(backbone=backbone, pooling="avg", crop=CropSettings(size=size, margin=0.1, jitter=0.1),
                           pretrained="none")
    torch.manual_seed(0)
    m = build(backbone, "avg", input_size=size, hidden=s.hidden).eval()
    save_model(Trained(m, s, Calibration("none"), 0.5, meta={"weights_source": "scratch (untrained: timing only)",
                                                              "calibration_data": None}), out)
    return out


def make_bundles(work: Path) -> dict[str, Path]:
    """``forced`` (valve_conf = decide_conf = 0: every frame is classified) and ``default`` (default screening)."""
    from echoavc.bundle import save_bundle
    from echoavc.settings import IngestSettings, ScreeningSettings

    pt = detector_checkpoint(work / "models" / "yolov5s_untrained.pt")
    cdir = classifier_folder(work / "models" / "mobilenetv3_large_untrained")
    out = {}
    for name, screening in (("forced", ScreeningSettings(valve_conf=0.0, decide_conf=0.0)),
                            ("default", ScreeningSettings())):
        b = work / "models" / f"bundle_{name}"
        if not (b / "bundle.json").is_file():
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                save_bundle(b, detector_weights=pt, classifier_dir=cdir, ingest=IngestSettings(), screening=screening,
                            exam_threshold=0.5, name=f"untrained-yolov5s640-mnv3l224-{name}",
                            limitations=["untrained weights: for timing only"])
            log(f"built bundle {b.name} in {time.perf_counter() - t:.0f} s")
        out[name] = b
    out["pt"] = pt
    return out
