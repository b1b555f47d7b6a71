"""Grad-CAM in closed form on the ONNX graph (echoavc.classifier.cam) is autograd's Grad-CAM, without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from echoavc.classifier.cam import OnnxGradCam
from echoavc.classifier.gradcam import grad_cam
from echoavc.classifier.model import build
from echoavc.classifier.predict import MODEL_FILE, ONNX_FILE, export_onnx


def _saved(folder, pooling: str, seeds: tuple[int, ...]):
    """A randomly initialised classifier (every dense unit's sign varies with the input), or an ensemble of one per
    seed, with its weights and ONNX graph in ``folder``, as a classifier folder holds them."""
    from safetensors.torch import save_file

    from echoavc.classifier.ensemble import AVCEnsemble

    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(build("mobilenetv3_small_050", pooling, input_size=64, hidden=16))
    m = (nets[0] if len(nets) == 1 else AVCEnsemble(nets)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in m.state_dict().items()}, str(folder / MODEL_FILE))
    export_onnx(m, folder / ONNX_FILE)
    return m


@pytest.mark.parametrize("pooling,seeds", [("avg", (3,)), ("max", (3,)), ("none", (3,)), ("avg", (3, 4)),
                                           ("none", (3, 4))])
def test_the_closed_form_on_the_onnx_graph_is_autograds_grad_cam(pooling, seeds, tmp_path):
    """One network, and an ensemble (its graph holds every member: the closed form sums their maps with 1/K of
    each one's gradient, autograd's Grad-CAM of the mean logit on the members' maps side by side)."""
    m = _saved(tmp_path / pooling, pooling, seeds)
    cam = OnnxGradCam(tmp_path / pooling, ONNX_FILE, pooling)
    assert len(cam.map_names) == len(seeds)
    rng = np.random.default_rng(0)
    lit = 0
    for _ in range(4):
        x = rng.normal(0, 1, (1, 3, 64, 64)).astype(np.float32)
        want, z_want = grad_cam(m, torch.from_numpy(x))
        got, z_got = cam(x)
        assert got.shape == want.shape == (64, 64)
        assert abs(z_got - z_want) < 1e-4 * max(1.0, abs(z_want))
        assert np.abs(got - want).max() < 1e-3, pooling
        lit += want.max() > 0
    assert lit >= 2  # maps with something in them, not only all-zero ones


def test_predict_draws_heat_maps_from_the_onnx_graph_without_torch(screening_bundle, tmp_path):
    """Heat maps on the ONNX backend import neither torch nor timm (seconds of a small batch), and are the same
    maps as autograd's on the PyTorch model."""
    from echoavc.bundle import load_bundle
    from echoavc.classifier.predict import Classifier

    from dataclasses import asdict

    sources = [str(p) for p in screening_bundle.test_sources[:3]]
    code = ("import sys, json; from echoavc.predict import predict; from echoavc.settings import ScreeningSettings; "
            f"r = predict({sources!r}, {str(screening_bundle.bundle)!r}, sys.argv[1], backend='onnx', "
            "settings=ScreeningSettings(**json.loads(sys.argv[2])), progress=False, report=False); "
            "print(json.dumps([sum(bool(e.get('heat_map')) for e in r.exams), 'torch' in sys.modules, "
            "'timm' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out"), json.dumps(asdict(screening_bundle.settings))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    heat_maps, torch_in, timm_in = json.loads(out.stdout.strip().splitlines()[-1])
    assert heat_maps >= 1 and not torch_in and not timm_in

    folder = load_bundle(screening_bundle.bundle).folder / "classifier"
    onnx_clf, torch_clf = Classifier.load(folder, "onnx"), Classifier.load(folder, "torch")
    crop = np.random.default_rng(1).integers(0, 255, (onnx_clf.crop.size,) * 2).astype(np.uint8)
    a, za = onnx_clf.grad_cam(crop)
    b, zb = torch_clf.grad_cam(crop)
    assert abs(za - zb) < 1e-3 and np.abs(a - b).max() < 1e-3
