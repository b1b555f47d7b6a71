"""A small synthetic cohort, made once per session for the synth tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """8 patients x 6 frames (seed 11): every view, several encodings, both classes."""
    from echoavc.synth.cohort import make_cohort

    out = tmp_path_factory.mktemp("synth_cohort")
    paths = make_cohort(out, 8, seed=11, frames_per_exam=6, workers=1, progress=False)
    return paths


@pytest.fixture(scope="session")
def frames(cohort):
    import pandas as pd

    return pd.read_csv(cohort.frames)
