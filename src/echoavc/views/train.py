"""``echoavc views train``: the view network on a dataset table's training patients, chosen on its validation ones.

Training part only is augmented (:func:`echoavc.views.data.augment_batch`); classes are balanced by sampling.
Each epoch is scored by clip view accuracy on the validation patients and the best epoch is kept, so the
validation figures stored in ``views.json`` are optimistic (labelled so). No figure here is held out: run
``echoavc views evaluate`` on other patients for that.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_folder
from echoavc.settings import ViewSettings
from echoavc.views.classes import VIEW_CLASSES
from echoavc.views.data import ViewFrames, augment_batch, view_frames
from echoavc.views.model import META_FILE, MODEL_FILE, MODEL_FORMAT, build

__all__ = ["train_views", "frame_probabilities"]

VALIDATION_LABEL = "validation (used for model selection; optimistic)"


def frame_probabilities(model, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Softmax of the torch network over grey frames (n, S, S) uint8."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch].astype(np.float32)[:, None] / 255.0)
            out.append(torch.softmax(model(x).float(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(VIEW_CLASSES)))


def _clip_accuracy(probs: np.ndarray, frames: ViewFrames) -> float:
    from echoavc.views.evaluate import clip_predictions

    clips = clip_predictions(probs, frames)
    return float(np.mean([c["view"] == c["predicted"] for c in clips])) if clips else float("nan")


def train_views(table, split, out: str | Path, settings: ViewSettings | None = None,
                log: Callable[[str], None] | None = print) -> dict:
    """Train on ``split``'s training patients of ``table`` (a DatasetTable), keep the epoch with the best clip
    accuracy on its validation patients, and write the model folder ``out`` (atomically). Returns views.json."""
    import torch
    from safetensors.torch import save_file

    from echoavc.views.evaluate import clip_predictions, view_report

    s = settings or ViewSettings()
    say = log or (lambda _m: None)
    out = Path(out)
    parts = split.parts()
    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    t0 = time.perf_counter()
    train = view_frames(table, s.input_size, parts["train"])
    val = view_frames(table, s.input_size, parts.get("val") or ())
    present = [c for c, k in train.counts().items() if k]
    if len(present) < 2:
        raise EchoAVCError("the training patients have fewer than two view classes: give views with "
                           "`echoavc dataset build --views VIEWS.csv`", table.ingest_dir)
    say(f"views: {len(train)} training frames {train.counts()}, {len(val)} validation frames; "
        f"{s.backbone} at {s.input_size} px, {s.epochs} epochs")
    model = build(s.backbone)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    steps = max(1, len(train) // s.batch) * s.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=steps, pct_start=0.15)
    # balanced sampling: each class drawn equally often (the cohorts hold more psax_av frames than others)
    counts = np.bincount(train.labels, minlength=len(VIEW_CLASSES)).astype(float)
    w = 1.0 / counts[train.labels]
    w /= w.sum()
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    best, best_acc, history = None, -1.0, []
    for epoch in range(s.epochs):
        model.train()
        order = rng.choice(len(train), size=(len(train) // s.batch) * s.batch or len(train), p=w)
        total = 0.0
        for i in range(0, len(order), s.batch):
            idx = order[i:i + s.batch]
            x = augment_batch(train.images[idx], rng) if s.augment else train.images[idx].astype(np.float32) / 255
            logits = model(torch.from_numpy(x[:, None]))
            loss = loss_fn(logits, torch.from_numpy(train.labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched.last_epoch < steps - 1:
                sched.step()
            total += loss.item() * len(idx)
        acc = _clip_accuracy(frame_probabilities(model, val.images), val) if len(val) else float("nan")
        history.append({"epoch": epoch + 1, "loss": round(total / max(len(order), 1), 4),
                        "val_clip_accuracy": None if acc != acc else round(acc, 4)})
        say(f"  epoch {epoch + 1}/{s.epochs}: loss {history[-1]['loss']:.3f}, validation clip accuracy "
            f"{history[-1]['val_clip_accuracy']}")
        if best is None or (acc == acc and acc >= best_acc):
            best_acc = acc if acc == acc else best_acc
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best)
    validation = None
    if len(val):
        probs = frame_probabilities(model, val.images)
        validation = view_report(clip_predictions(probs, val), n_boot=1000, label=VALIDATION_LABEL)
    meta = {"format": MODEL_FORMAT, "backbone": s.backbone, "input_size": s.input_size,
            "classes": list(VIEW_CLASSES), "frames_per_clip": s.frames_per_clip, "settings": asdict(s),
            "training": {"frames": train.counts(), "patients": len(set(train.patients)),
                         "clips": len(set(train.clips)), "table_fingerprint": table.fingerprint,
                         "split_fingerprint": split.fingerprint, "history": history,
                         "seconds": round(time.perf_counter() - t0, 1)},
            "validation": validation}
    with atomic_folder(out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / MODEL_FILE))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    say(f"view model: {out} ({meta['training']['seconds']:.0f} s)")
    return meta
