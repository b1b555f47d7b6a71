"""A synthetic study to train on: synth -> ingest -> dataset build -> patient split, in one call.

Used by ``echoavc demo``, the benchmarks and the GPU scripts. Files that ingest cannot read, and DICOM files
whose frames the dataset build rejects (e.g. a valve box outside the cone crop when the cone was found
wrongly), are left out and counted: the point is a study to train on; ingest and the dataset build have
their own tests and reports.

A held-out cohort must not be filtered that way (it would leave out exactly the files the pipeline gets
wrong): ``held_out=True`` keeps every file ingest could read, with valve boxes that fall outside the standard
image where the cone was found wrongly (they count against the detector there, as such files would in use),
and counts the files ingest could not read (``info["unreadable_files"]``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd


def make_study(out: str | Path, patients: int, seed: int, frames_per_exam: int = 10, k: int = 0,
               train: float = 0.8, val: float = 0.1, test: float = 0.1, workers: int = 1, split_seed: int = 0,
               prevalence: float = 0.36, progress: bool = False, held_out: bool = False, **synth):
    """Build the study under ``out`` (cohort/, ingested/, keys/echoavc.key, table/, table/split.json);
    returns (DatasetTable, Split, info dict). ``held_out``: keep every readable file (see the module).
    ``synth``: other :class:`~echoavc.settings.SynthSettings` fields for the cohort (e.g. ``anatomy=``)."""
    from echoavc.dataset import make_split
    from echoavc.ingest import ingest
    from echoavc.settings import SplitSettings
    from echoavc.synth.cohort import make_cohort

    out = Path(out)
    t0 = time.perf_counter()
    cohort = make_cohort(out / "cohort", patients, seed=seed, frames_per_exam=frames_per_exam,
                         exams_per_patient=1, workers=workers, progress=progress,
                         prevalence=prevalence, **synth)
    key = out / "keys" / "echoavc.key"
    report = ingest([out / "cohort" / "dicom"], out / "ingested", key, workers=max(1, workers), progress=progress)
    table, dropped = study_table(cohort, out / "ingested", key, held_out)
    table.save(out / "table")
    split = make_split(table.frame, SplitSettings(train=train, val=val, test=test, k=k, seed=split_seed),
                       table.fingerprint)
    split.save(out / "table" / "split.json")
    roles = table.frame["role"].value_counts().to_dict()
    info = {"patients": patients, "seed": seed, "frames": len(table.frame), "roles": roles,
            "dropped_files": len(report.failures) + dropped, "unreadable_files": len(report.failures),
            "held_out": held_out, "seconds": round(time.perf_counter() - t0, 1)}
    return table, split, info


def study_table(cohort, ingested: Path, key: Path, held_out: bool = False):
    """(DatasetTable, files left out) from a cohort's files and its ingest folder. For training, DICOM files
    whose frames the build rejects are left out and counted; ``held_out`` keeps every one of them."""
    from echoavc.dataset.table import build_dataset
    from echoavc.settings import DatasetSettings

    manifest = Path(ingested) / "manifest.csv"
    cohort = _boxes_of_ingested_files(cohort, manifest)
    if held_out:
        # no box is rejected for lying outside the standard image: a wrongly found cone is the pipeline's error
        settings = DatasetSettings(box_tolerance_px=float("inf"))
        table = build_dataset(manifest, cohort.maxqda, "maxqda", cohort.labels, key, cohort.frames, settings,
                              ingest_dir=ingested)
        if table.errors:
            raise RuntimeError("held-out dataset build fails: " + "; ".join(p.line() for p in table.errors[:3]))
        return table, 0
    table = build_dataset(manifest, cohort.maxqda, "maxqda", cohort.labels, key, cohort.frames, ingest_dir=ingested)
    if not table.errors:
        return table, 0
    # leave out whole DICOM files whose frames were rejected, then build again
    bad = {re.split(r"[: ]", p.where)[0] for p in table.errors}
    mdf = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    keep = ~mdf["source_sha256"].isin(bad)
    dropped = int(mdf.loc[~keep, "source_sha256"].nunique())
    manifest = Path(ingested) / "manifest.kept.csv"
    mdf[keep].to_csv(manifest, index=False)
    boxes = pd.read_csv(cohort.maxqda, dtype=str, keep_default_na=False)
    boxes = boxes[~boxes["image"].str.split(":").str[0].isin(bad)]
    box_file = Path(cohort.maxqda).with_name("maxqda_valves.kept.csv")
    boxes.to_csv(box_file, index=False)
    table = build_dataset(manifest, box_file, "maxqda", cohort.labels, key, cohort.frames, ingest_dir=ingested)
    if table.errors:
        raise RuntimeError("dataset build still fails: " + "; ".join(p.line() for p in table.errors[:3]))
    return table, dropped


def _boxes_of_ingested_files(cohort, manifest: Path):
    """The cohort with its box file restricted to files ingest wrote. Files ingest failed on are counted by the
    caller as unreadable (``make_study``'s ``dropped_files``); their boxes would otherwise make every build fail
    (a problem named by box row, not by file, so the retry below could not leave them out)."""
    from dataclasses import replace

    ingested = set(pd.read_csv(manifest, dtype=str, keep_default_na=False)["source_sha256"])
    boxes = pd.read_csv(cohort.maxqda, dtype=str, keep_default_na=False)
    of_ingested = boxes["image"].str.split(":").str[0].isin(ingested)
    if of_ingested.all():
        return cohort
    box_file = Path(manifest).with_name("maxqda_valves.ingested.csv")
    boxes[of_ingested].to_csv(box_file, index=False)
    return replace(cohort, maxqda=box_file)
