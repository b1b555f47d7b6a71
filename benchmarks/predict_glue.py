"""The glue a user would write, timed by stage, for bench_predict.py: pydicom, a cv2 letterbox, Ultralytics
YOLO one frame at a time, a timm classifier one crop at a time (see bench_predict.py's docstring)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def summarise(label: str, total: float, frames: int, stages: dict) -> dict:
    other = max(total - sum(stages.values()), 0.0)
    st = {**stages, "other": other}
    return {"label": label, "seconds": round(total, 3), "frames": frames,
            "s_per_frame": round(total / max(frames, 1), 4),
            "stages_s": {k: round(v, 3) for k, v in st.items()},
            "shares": {k: round(v / total, 3) if total > 0 else None for k, v in st.items()}}


class Glue:
    """pydicom -> letterbox 640 -> Ultralytics YOLO predict (one frame) -> crop -> 224 -> timm, frame by frame."""

    MEAN = np.array([0.485, 0.456, 0.406], np.float32)
    STD = np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, weights: Path, imgsz: int = 640, crop: int = 224, backbone: str = "mobilenetv3_large_100",
                 classifier=None):
        import timm
        import torch
        from ultralytics import YOLO

        from echoavc import runtime

        self.imgsz, self.crop = imgsz, crop
        self.yolo = YOLO(str(weights))
        torch.manual_seed(0)
        # ``classifier``: a trained network (a bundle's); else an untrained timm one of ``backbone``
        self.clf = (classifier if classifier is not None else
                    timm.create_model(backbone, pretrained=False, num_classes=1)).eval()
        runtime.all_cores()

    @classmethod
    def of_bundle(cls, bundle: Path, work: Path) -> "Glue":
        """The glue on a trained bundle's own networks: its detector as an Ultralytics checkpoint at its image
        size, its classifier network (timm backbone + head) at its crop size, plain sigmoid of the logit."""
        from predict_setup import bundle_checkpoint

        from echoavc.classifier.predict import load_model

        model, meta = load_model(bundle / "classifier")
        pt = bundle_checkpoint(bundle, work / "models" / f"glue_{bundle.parent.name}_{bundle.name}.pt")
        arch_imgsz = int(__import__("json").loads((bundle / "detector.safetensors.json").read_text())["imgsz"])
        g = cls(pt, imgsz=arch_imgsz, crop=int(meta["input_size"]), classifier=model)
        g.MEAN = np.asarray(meta["normalisation"]["mean"], np.float32)
        g.STD = np.asarray(meta["normalisation"]["std"], np.float32)
        return g

    @staticmethod
    def letterbox(img: np.ndarray, size: int) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        r = min(size / h, size / w)
        nw, nh = round(w * r), round(h * r)
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        top, left = (size - nh) // 2, (size - nw) // 2
        return cv2.copyMakeBorder(img, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT,
                                  value=(114, 114, 114))

    def screen_file(self, path: Path, t: dict) -> list[float]:
        import cv2
        import pydicom
        import torch

        from echoavc import runtime

        t0 = time.perf_counter()
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        multi = int(getattr(ds, "NumberOfFrames", 1) or 1) > 1
        frames = arr if multi else arr[None]
        t1 = time.perf_counter()
        t["decode"] += t1 - t0
        probs = []
        for frame in frames:
            a = time.perf_counter()
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            img = self.letterbox(frame, self.imgsz)
            b = time.perf_counter()
            res = self.yolo.predict(img, imgsz=self.imgsz, device="cpu", verbose=False)[0]
            runtime.all_cores()
            c = time.perf_counter()
            if len(res.boxes):
                x1, y1, x2, y2 = (int(v) for v in res.boxes.xyxy[0].tolist())
            else:
                q = self.imgsz // 4
                x1, y1, x2, y2 = q, q, 3 * q, 3 * q
            x1, y1 = max(x1, 0), max(y1, 0)
            x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
            crop = cv2.resize(img[y1:y2, x1:x2], (self.crop, self.crop), interpolation=cv2.INTER_LINEAR)
            x = ((crop[:, :, ::-1].astype(np.float32) / 255.0 - self.MEAN) / self.STD).transpose(2, 0, 1)
            d = time.perf_counter()
            with torch.inference_mode():
                probs.append(float(torch.sigmoid(self.clf(torch.from_numpy(np.ascontiguousarray(x))[None])).reshape(-1)[0]))
            e = time.perf_counter()
            t["letterbox"] += b - a
            t["detector"] += c - b
            t["crop"] += d - c
            t["classifier"] += e - d
        return probs


def run_glue(glue: Glue, files: list[Path]) -> dict:
    t = dict.fromkeys(("decode", "letterbox", "detector", "crop", "classifier"), 0.0)
    glue.screen_file(files[0], dict(t))  # warm-up (Ultralytics sets up its predictor on the first call)
    frames = 0
    t0 = time.perf_counter()
    for f in files:
        frames += len(glue.screen_file(f, t))
    total = time.perf_counter() - t0
    return summarise("glue (pydicom + Ultralytics YOLOv5s 640 + timm MobileNetV3-L 224)", total, frames, t)
