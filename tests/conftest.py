"""Shared fixtures. Expensive artefacts (cohorts, trained models) are made once per session here,
so the suite stays fast as the project grows. Plain helpers live in testkit.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network and never write outside their temporary folders.
os.environ.setdefault("ECHOAVC_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def key_path(tmp_path_factory) -> Path:
    """A fresh pseudonym key location, outside any output folder."""
    return tmp_path_factory.mktemp("keys") / "echoavc.key"
