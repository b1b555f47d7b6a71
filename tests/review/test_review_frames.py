"""``predict --review-frames`` keeps the standard frames the models saw, joined to the ingest manifest: the same
source_sha256 + frame_index, the same transform, and (up to JPEG) the same pixels ingest wrote."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from echoavc.review.frames import load_clips

pytestmark = pytest.mark.slow


def test_kept_frames_are_the_ingested_standard_frames_with_their_transform(reviewed_cohort):
    study, results = reviewed_cohort.study, reviewed_cohort.results
    manifest = pd.read_csv(study.ingested / "manifest.csv", dtype={"source_sha256": str, "study_id": str})
    clips = load_clips(results)
    screened = {f["source"] for f in reviewed_cohort.report.frames}
    assert len(clips) == len(screened) > 0  # every screened clip (all have a cone here)
    meta = json.loads((results / "review" / "review.json").read_text())
    assert meta["preprocessing"]["standard_size"] == 640
    n = 0
    for sha, clip in clips.items():
        rows = manifest[manifest["source_sha256"] == sha].set_index("frame_index")
        assert set(rows["study_id"]) == {clip["exam_id"]}  # keyed exam ids: predict's id is ingest's study id
        assert sorted(f["frame_index"] for f in clip["frames"]) == sorted(rows.index)
        t = clip["transform"]
        for f in clip["frames"]:
            r = rows.loc[f["frame_index"]]
            for k in ("crop_x", "crop_y", "crop_w", "crop_h", "std_size"):
                assert t["size" if k == "std_size" else k] == int(r[k]), k
            for k in ("scale", "pad_x", "pad_y"):
                assert t[k] == pytest.approx(float(r[k]), abs=1e-9), k
            assert (int(r["original_rows"]), int(r["original_cols"])) == (clip["original_rows"], clip["original_cols"])
            kept = cv2.imread(str(results / f["image"]), cv2.IMREAD_GRAYSCALE)
            ingested = cv2.imread(str(study.ingested / r["image_path"]), cv2.IMREAD_GRAYSCALE)
            assert kept.shape == ingested.shape == (640, 640)
            assert np.abs(kept.astype(int) - ingested).mean() < 2.0  # JPEG quality 92
            n += 1
    assert n == len(reviewed_cohort.report.frames)


def test_without_the_flag_nothing_is_kept(screening_bundle, tmp_path):
    from echoavc.predict import predict

    src = screening_bundle.test_sources[:1]
    predict(src, screening_bundle.bundle, tmp_path / "out", settings=screening_bundle.settings, progress=False,
            overlays="none", report=False)
    assert not (tmp_path / "out" / "review").exists()
    # the same results folder asked again with the flag screens again (another fingerprint) and keeps them
    rep = predict(src, screening_bundle.bundle, tmp_path / "out", settings=screening_bundle.settings, progress=False,
                  overlays="none", report=False, review_frames=True)
    assert rep.done == 1 and len(load_clips(tmp_path / "out")) == 1
