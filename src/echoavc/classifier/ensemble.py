"""Several classifier networks served as one: their mean logit, calibrated on validation as one model.

Why: on tuning cohorts one training seed moved the demo's exam AUROC by 0.03 (0.912 against 0.942), more than
any recipe change tried; the mean of two seeds' outputs kept the better seed's level (docs/screening.md). The
members share the architecture, crop and normalisation and differ in their seed (``ClassifierSettings.seed``,
``seed + 1``, ...).

:class:`AVCEnsemble` has :class:`~echoavc.classifier.model.AVCNet`'s interface, so everything that reads one
network reads it: its feature map is the members' maps side by side (channels), its pooled features theirs
side by side (the grade head is fitted on all of them), its logit the mean of theirs. Grad-CAM of that logit on
that map is the ensemble's own heat map. One ``model.safetensors`` holds every member (``members.K.`` keys) and
``classifier.json`` says how many (``members``); a folder without the field holds one network, as before.

:func:`combine_classifiers` makes an ensemble of classifiers trained apart (the demo trains its second member on
the core the detector frees), calibrated and thresholded on the validation part as ``classifier train`` does.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from echoavc.errors import EchoAVCError

__all__ = ["AVCEnsemble", "as_model", "combine_classifiers"]


class AVCEnsemble(nn.Module):
    """Members of one architecture; logit = mean of the members' logits."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise EchoAVCError("an ensemble needs two or more member networks")
        first = members[0]
        for m in members[1:]:
            if (m.feature_shape, m.pooling, m.input_size, m.n_features) != \
                    (first.feature_shape, first.pooling, first.input_size, first.n_features):
                raise EchoAVCError("ensemble members differ in architecture (backbone, pooling or input size)")
        self.members = nn.ModuleList(members)
        self.pooling, self.input_size = first.pooling, first.input_size
        c, h, w = first.feature_shape
        self.feature_shape = (c * len(members), h, w)
        self.n_features = first.n_features * len(members)
        self.weights_source = getattr(first, "weights_source", "")
        self.starting_weights = getattr(first, "starting_weights", None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The members' last feature maps side by side (N, K*C, h, w)."""
        return torch.cat([m.features(x) for m in self.members], 1)

    def pooled(self, feats: torch.Tensor) -> torch.Tensor:
        """The members' pooled features side by side (N, K*n_features)."""
        parts = feats.chunk(len(self.members), 1)
        return torch.cat([m.pooled(f) for m, f in zip(self.members, parts)], 1)

    def logits_of_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        parts = pooled.chunk(len(self.members), 1)
        return torch.stack([m.logits_of_pooled(p) for m, p in zip(self.members, parts)]).mean(0)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.logits_of_pooled(self.pooled(feats))

    def logits_and_pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.pooled(self.features(x))
        return self.logits_of_pooled(pooled), pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N,): the mean of the members'."""
        return self.head(self.features(x))


def as_model(nets: Sequence[nn.Module]) -> nn.Module:
    """The one network, or the ensemble of two or more."""
    return nets[0] if len(nets) == 1 else AVCEnsemble(nets)


#: settings members may differ in (everything else must match for their outputs to be averaged)
_MAY_DIFFER = ("seed", "threads", "members")


def combine_classifiers(folders: Sequence[str | Path], table, split, out: str | Path,
                        log: Callable[[str], None] | None = None, grade=None):
    """One classifier folder ``out`` holding the single-network classifiers ``folders`` (trained on the same
    table and split, with the same settings but their seeds) as an ensemble, calibrated and thresholded on the
    split's validation part as :func:`echoavc.classifier.train.train_classifier` does, with its grade head.
    Returns the :class:`~echoavc.classifier.train.Trained`."""
    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.predict import load_model, member_count
    from echoavc.classifier.train import calibrated, finish_training, set_threads
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.settings import ClassifierSettings, from_dict

    if len(folders) < 2:
        raise EchoAVCError("combine needs two or more classifier folders")
    nets, metas = [], []
    for f in folders:
        model, meta = load_model(f)
        if member_count(meta) != 1:
            raise EchoAVCError("already an ensemble: combine single-network classifiers", f)
        nets.append(model)
        metas.append(meta)
    keep = {k: v for k, v in metas[0]["settings"].items() if k not in _MAY_DIFFER}
    for f, meta in zip(folders[1:], metas[1:]):
        other = {k: v for k, v in meta["settings"].items() if k not in _MAY_DIFFER}
        if other != keep:
            diff = sorted(k for k in set(keep) | set(other) if keep.get(k) != other.get(k))
            raise EchoAVCError(f"trained with other settings than {folders[0]} ({', '.join(diff)})", f)
    if not isinstance(table, DatasetTable):
        table = DatasetTable.load(table)
    if not isinstance(split, Split):
        split = Split.load(split)
    for f, meta in zip(folders, metas):
        data = meta.get("data") or {}
        if data.get("table_fingerprint") != table.fingerprint or data.get("split_fingerprint") != split.fingerprint:
            raise EchoAVCError("trained on another table or split than the one given", f)
    s = dataclasses.replace(from_dict(ClassifierSettings, metas[0]["settings"]), members=len(nets))
    threads = set_threads(s)
    samples = load_samples(table, split, None)
    train = [x for x in samples if x.part == "train"]
    val = [x for x in samples if x.part == "val"]
    if not val:
        raise EchoAVCError("the split has no validation part to calibrate the ensemble on", split.path)
    source = CropSource(table, s.crop, s.noise_reduction, max_jitter=s.crop.jitter)
    t0 = time.perf_counter()
    model = AVCEnsemble(nets)
    meta = {"fit": metas[0].get("fit"),
            "member_fits": [{"seed": m["settings"]["seed"], **(m.get("fit") or {})} for m in metas],
            "member_train_seconds": [(m.get("data") or {}).get("train_seconds") for m in metas]}
    trained = calibrated(model, source, train, val, s, meta)
    return finish_training(trained, source, samples, table, split, out, threads,
                           sum(x or 0 for x in meta["member_train_seconds"]) + time.perf_counter() - t0, None,
                           log, grade)
