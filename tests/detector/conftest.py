"""Detector test fixtures built on the session's ``tiny_detector`` (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def onnx_model(tiny_detector, tmp_path_factory):
    """The tiny detector exported to ONNX once per session (dynamic batch, onnxslim)."""
    from echoavc.detector.export import export_onnx

    return export_onnx(tiny_detector.result.best, tmp_path_factory.mktemp("onnx") / "model.onnx")
