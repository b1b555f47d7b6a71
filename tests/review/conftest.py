"""Fixtures of the review tests: a results folder made by a real ``predict --review-frames`` run of the session's
smoke bundle on the whole synthetic cohort (10 exams), keyed with the cohort's ingest key so its exam ids join
the ingest manifest; a fresh copy per test; a headless Chromium."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def reviewed_cohort(screening_bundle, tmp_path_factory):
    """Fields: results (folder; copy it before serving), study (synthetic_study), bundle (screening_bundle),
    report (PredictReport)."""
    from echoavc.predict import predict

    study = screening_bundle.study
    out = tmp_path_factory.mktemp("review_results") / "results"
    report = predict([study.cohort.out_dir / "dicom"], screening_bundle.bundle, out, settings=screening_bundle.settings, progress=False,
                     key=study.key, review_frames=True)
    assert not report.failures, report.failures
    return SimpleNamespace(results=out, study=study, bundle=screening_bundle, report=report)


@pytest.fixture
def results(reviewed_cohort, tmp_path):
    """A fresh copy of the reviewed cohort's results (answers are written inside it)."""
    return shutil.copytree(reviewed_cohort.results, tmp_path / "results")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium at 1280 x 1000 (a skip without it on a developer machine; a failure in CI)."""
    from testkit import need_tool

    need_tool("chromium")
    need_tool("chromedriver")
    from echoavc.review.serve import headless_chromium

    driver = headless_chromium(1280, 1000)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
