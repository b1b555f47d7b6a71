"""The seed registry and unfiltered held-out cohorts (docs/evaluation.md)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pandas as pd
import pytest

from echoavc.errors import EchoAVCError
from echoavc.evaluate.seeds import EVALUATION_SEEDS, is_evaluation_seed, require_evaluation_seed


def test_tuning_seeds_are_refused_for_reports_and_evaluation_seeds_pass():
    for seed in (0, 5, 101, 202, 303, 404, 505, 2026, 2027, 899_999):  # every seed used or tuned on so far
        assert not is_evaluation_seed(seed)
        with pytest.raises(EchoAVCError, match=f"seed {seed} .* tuning seed"):
            require_evaluation_seed(seed)
    for seed in (EVALUATION_SEEDS.start, 900_001, 900_202, 900_303, EVALUATION_SEEDS.stop - 1):
        assert require_evaluation_seed(seed) == seed


def test_the_demo_refuses_to_report_on_a_tuning_seed_before_doing_any_work(tmp_path):
    from echoavc.demo import HELDOUT_SEED, run_demo

    assert is_evaluation_seed(HELDOUT_SEED)
    with pytest.raises(EchoAVCError, match="tuning seed"):
        run_demo(tmp_path / "demo", seed=2027, log=lambda m: None)
    assert not (tmp_path / "demo").exists() or not any((tmp_path / "demo").iterdir())


def test_a_held_out_study_keeps_the_files_a_training_study_drops(synthetic_study, tmp_path):
    """A box that lands outside the standard image (as when the cone is found wrongly): a training study
    leaves its file out, a held-out one keeps it, so the detector is scored on it."""
    from echoavc.synth.study import study_table

    cohort = synthetic_study.cohort
    ingested = tmp_path / "ingested"
    shutil.copytree(synthetic_study.ingested, ingested)
    boxes = pd.read_csv(cohort.maxqda, dtype=str, keep_default_na=False)
    bad_file = boxes["image"].iloc[0].split(":")[0]
    boxes.loc[0, "x"] = "-4000"  # far outside the image: the dataset build rejects this frame
    moved = tmp_path / "maxqda_valves.csv"
    boxes.to_csv(moved, index=False)
    shifted = replace(cohort, maxqda=moved)

    kept, dropped = study_table(shifted, ingested, synthetic_study.key, held_out=True)
    assert dropped == 0 and bad_file in set(kept.frame["source_sha256"])
    assert len(kept.frame) == len(synthetic_study.table.frame)
    trained, dropped = study_table(shifted, ingested, synthetic_study.key, held_out=False)
    assert dropped == 1 and bad_file not in set(trained.frame["source_sha256"])


def test_a_file_ingest_failed_on_does_not_break_either_study_build(synthetic_study, tmp_path):
    """Ingest could not read one file (its rows are missing from the manifest): its boxes are left out of both
    builds instead of failing them; make_study counts the file as unreadable."""
    from echoavc.synth.study import study_table

    ingested = tmp_path / "ingested"
    shutil.copytree(synthetic_study.ingested, ingested)
    manifest = pd.read_csv(ingested / "manifest.csv", dtype=str, keep_default_na=False)
    lost = manifest["source_sha256"].iloc[0]
    manifest[manifest["source_sha256"] != lost].to_csv(ingested / "manifest.csv", index=False)
    for held_out in (True, False):
        table, dropped = study_table(synthetic_study.cohort, ingested, synthetic_study.key, held_out=held_out)
        assert dropped == 0 and lost not in set(table.frame["source_sha256"])
        assert set(table.frame["source_sha256"]) == set(synthetic_study.table.frame["source_sha256"]) - {lost}
