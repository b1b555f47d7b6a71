"""The classifier network: a timm backbone, the paper's pooling choice, Dense(120), ReLU, one logit.

Keras ``include_top=False, pooling=None | "max" | "avg"`` is ``forward_features`` here: the last
convolutional feature map (C x h x w). ``none`` flattens it (C*h*w features, so the dense layer
depends on the input size), ``max`` / ``avg`` pool it to C features. Then ``Linear(.., hidden)``,
ReLU, and ``Linear(hidden, 1)``: one logit, sigmoid outside the model (calibration acts on logits).

Weights (``pretrained``): "none" (the default): from scratch; a local file (PATH, .pth or .safetensors, loaded
by timm) or the name of weights in the echoavc weights cache (``echoavc weights fetch / import``); "auto": the
cache's weights for this backbone when they are there, else from scratch with a warning. Building a model never
downloads anything: only ``echoavc weights fetch`` does.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from echoavc import runtime
from echoavc.errors import EchoAVCError, EchoAVCWarning
from echoavc.settings import CLASSIFIER_BACKBONES, CLASSIFIER_POOLINGS

__all__ = ["AVCNet", "OrdinalAux", "build", "create_backbone", "PretrainedWarning"]


class PretrainedWarning(EchoAVCWarning):
    """Pretrained weights were asked for but could not be had: the backbone starts from scratch."""


def create_backbone(name: str, pretrained: str | Path | None = "none") -> tuple[nn.Module, str]:
    """A timm backbone without classifier; returns it and where its weights came from (``file:PATH`` or
    ``scratch``). Never touches the network."""
    import timm

    from echoavc import weights as W

    runtime.configure()
    if not timm.is_model(name):
        raise EchoAVCError(f"unknown timm backbone {name!r} (the paper's: {', '.join(CLASSIFIER_BACKBONES)})")
    kw = dict(num_classes=0, global_pool="")
    spec = "none" if pretrained is None else str(pretrained)
    if spec.lower() in ("none", "", "scratch", "false"):
        return timm.create_model(name, pretrained=False, **kw), "scratch"
    if spec.lower() == "hub":
        raise EchoAVCError(f"pretrained 'hub' is gone: nothing downloads while training. Run `echoavc weights fetch "
                           f"{name}` once (online), then pass --pretrained {name}")
    if spec.lower() == "auto":
        path = W.lookup(name)
        if path is None:
            warnings.warn(f"{name}: no pretrained weights in {W.cache_folder()} (`echoavc weights fetch {name}` "
                          "puts them there); training from scratch.", PretrainedWarning, stacklevel=2)
            return timm.create_model(name, pretrained=False, **kw), "scratch"
    else:
        path = W.resolve_file(spec)
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kw)
    except Exception as exc:  # a wrong file for this architecture
        raise EchoAVCError(f"cannot load weights for {name}: {str(exc).splitlines()[0][:200]}", path) from None
    return model, f"file:{path}"


class AVCNet(nn.Module):
    """Backbone -> pooling (none | max | avg) -> [dropout] -> Linear(hidden) -> ReLU -> Linear(1)."""

    def __init__(self, backbone: nn.Module, pooling: str, input_size: int, hidden: int = 120,
                 dropout: float = 0.0, in_chans: int = 3):
        super().__init__()
        if pooling not in CLASSIFIER_POOLINGS:
            raise EchoAVCError(f"pooling must be one of {', '.join(CLASSIFIER_POOLINGS)}, not {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.input_size = int(input_size)
        self.feature_shape = self._feature_shape(in_chans)  # (C, h, w) at input_size
        c, h, w = self.feature_shape
        self.pool = {"none": nn.Identity(), "max": nn.AdaptiveMaxPool2d(1), "avg": nn.AdaptiveAvgPool2d(1)}[pooling]
        self.flatten = nn.Flatten(1)
        self.n_features = c * h * w if pooling == "none" else c
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.dense = nn.Linear(self.n_features, hidden)
        self.act = nn.ReLU()
        self.out = nn.Linear(hidden, 1)

    def _feature_shape(self, in_chans: int) -> tuple[int, int, int]:
        was = self.backbone.training
        self.backbone.eval()  # no batch-norm statistics from the dummy input
        with torch.no_grad():
            f = self.backbone.forward_features(torch.zeros(1, in_chans, self.input_size, self.input_size))
        self.backbone.train(was)
        return tuple(int(v) for v in f.shape[1:])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (N, C, h, w): what Grad-CAM explains."""
        return self.backbone.forward_features(x)

    def pooled(self, feats: torch.Tensor) -> torch.Tensor:
        """The dense layer's input (N, n_features): the flattened map (none) or the pooled channels."""
        return self.flatten(self.pool(feats))

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.logits_of_pooled(self.pooled(feats))

    def logits_of_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (N,) from the pooled features (the dense layers alone)."""
        return self.out(self.act(self.dense(self.dropout(pooled)))).squeeze(1)

    def logits_and_pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N,), pooled features (N, n_features)) from one backbone pass: the grade head reads the second."""
        pooled = self.pooled(self.features(x))
        return self.logits_of_pooled(pooled), pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N,)."""
        return self.head(self.features(x))


class OrdinalAux(nn.Module):
    """Training only: a cumulative-link grade output on the pooled features, P(grade > k) = sigmoid(w . x - c_k)
    with ordered cut points. Its loss, added to the binary one (``ClassifierSettings.grade_loss``), makes the
    backbone keep how much calcium a crop holds, which a binary loss alone need not (grade 2 against 3). It is
    not saved: the served grade head is fitted afterwards on the frozen features (``classifier.grade_fit``)."""

    def __init__(self, n_features: int, n_classes: int = 4):
        super().__init__()
        self.score = nn.Linear(n_features, 1)
        self.first_cut = nn.Parameter(torch.zeros(1))
        self.gaps = nn.Parameter(torch.zeros(n_classes - 2))  # softplus(gap) > 0 keeps the cut points ordered

    def cumulative_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, n_classes - 1) logits of P(grade > k)."""
        cuts = torch.cumsum(torch.cat([self.first_cut, nn.functional.softplus(self.gaps)]), 0)
        return self.score(pooled) - cuts[None, :]

    def loss(self, pooled: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of the ``n_classes - 1`` "grade > k" questions, over crops with grade >= 0
        (-1: no grade, left out); 0 when the batch has none."""
        known = grades >= 0
        if not bool(known.any()):
            return pooled.sum() * 0.0
        z = self.cumulative_logits(pooled[known])
        k = torch.arange(z.shape[1], device=z.device)
        target = (grades[known][:, None] > k[None, :]).float()
        return nn.functional.binary_cross_entropy_with_logits(z, target)


def build(backbone: str, pooling: str, pretrained_path: str | Path | None = None, input_size: int = 224,
          hidden: int = 120, dropout: float = 0.0, pretrained: str | None = None) -> AVCNet:
    """The classifier for ``backbone`` (a timm name) and ``pooling`` (none | max | avg).

    ``pretrained_path`` loads local weights; otherwise ``pretrained`` is "none" (default), a file, a cached
    weights name, or "auto" (the cache's weights for ``backbone``, else from scratch with a ``PretrainedWarning``).
    ``model.weights_source`` says which happened; ``model.starting_weights`` records it with the file's sha256.
    """
    from echoavc.weights import starting_record

    spec = str(pretrained_path) if pretrained_path is not None else (pretrained or "none")
    net, source = create_backbone(backbone, spec)
    model = AVCNet(net, pooling, input_size, hidden, dropout)
    model.backbone_name = backbone
    model.weights_source = source
    model.starting_weights = starting_record(source[len("file:"):] if source.startswith("file:") else None)
    return model
