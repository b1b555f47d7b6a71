from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeingest import make_ingest  # noqa: E402


@pytest.fixture(scope="module")
def ingest(tmp_path_factory):
    """10 patients, one exam each: 2 valve frames + 1 background frame per exam, 96 px standard images."""
    return make_ingest(tmp_path_factory.mktemp("ingest") / "ingested", patients=10)


@pytest.fixture(scope="module")
def built(ingest, tmp_path_factory):
    """The table built from ``ingest`` with MAXQDA boxes (original space), labels and views."""
    from echoavc.dataset.table import build_dataset

    d = tmp_path_factory.mktemp("inputs")
    table = build_dataset(ingest.manifest, ingest.write_maxqda(d / "boxes.csv"), "maxqda",
                          ingest.write_labels(d / "labels.csv"), ingest.key, ingest.write_views(d / "views.csv"),
                          out=d / "table")
    assert not table.errors, [p.line() for p in table.errors]
    return table, d / "table"
