from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dataset"))

from fakeingest import make_ingest  # noqa: E402


@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    return make_ingest(tmp_path_factory.mktemp("ingest") / "ingested", patients=6, std=128, seed=3)


@pytest.fixture(scope="module")
def frames(ingest):
    from echoavc.annotations import FrameIndex

    return FrameIndex.read(ingest.manifest)
