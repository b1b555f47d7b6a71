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
               prevalence: float = 0.36, progress: bool = False, held_out: bool = False, table_name: str = "table",
               **synth):
    """Build the study under ``out`` (cohort/, ingested/, keys/echoavc.key, <table_name>/ with split.json);
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
    table.save(out / table_name)
    split = make_split(table.frame, SplitSettings(train=train, val=val, test=test, k=k, seed=split_seed),
                       table.fingerprint)
    split.save(out / table_name / "split.json")
    roles = table.frame["role"].value_counts().to_dict()
    info = {"patients": patients, "seed": seed, "frames": len(table.frame), "roles": roles,
            "dropped_files": len(report.failures) + dropped, "unreadable_files": len(report.failures),
            "held_out": held_out, "seconds": round(time.perf_counter() - t0, 1)}
    return table, split, info


def grow_study(out: str | Path, patients: int, seed: int, frames_per_exam: int = 10, workers: int = 1,
               prevalence: float = 0.36, progress: bool = False, from_table: str = "table",
               table_name: str = "table-grown", **synth):
    """Add ``patients`` synthetic patients (cohort seed ``seed``) to the study ``out`` made by :func:`make_study`:
    their cohort in cohort-<seed>/, ingested into the same ingested/ folder with the same key, one table of
    every patient in <table_name>/, and its split: the patients of <from_table>/split.json keep their parts (a
    stage already trained on that table's training patients never meets the grown table's validation patients);
    the new ones are split with the same fractions. Returns (DatasetTable, Split, info dict)."""
    from dataclasses import replace

    from echoavc.dataset.split import Split, extend_split
    from echoavc.ingest import ingest
    from echoavc.synth.cohort import CohortPaths, make_cohort, patient_id_of

    out = Path(out)
    t0 = time.perf_counter()
    first = CohortPaths.of(out / "cohort")
    ids = set(pd.read_csv(first.labels, dtype=str, keep_default_na=False)["patient_id"])
    clash = ids & {patient_id_of(seed, i) for i in range(patients)}
    if clash:
        raise ValueError(f"cohort seed {seed} repeats {len(clash)} patient ids of the study (e.g. {sorted(clash)[0]}): "
                         "patient ids carry the seed modulo 1000, so pick a seed that differs there")
    extra = make_cohort(out / f"cohort-{seed}", patients, seed=seed, frames_per_exam=frames_per_exam,
                        exams_per_patient=1, workers=workers, progress=progress, prevalence=prevalence, **synth)
    key = out / "keys" / "echoavc.key"
    report = ingest([extra.out_dir / "dicom"], out / "ingested", key, workers=max(1, workers), progress=progress)
    merged = out / f"{table_name}.cohort"
    merged.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("frames", "labels", "maxqda"):
        parts = []
        for c in (first, extra):
            part = pd.read_csv(getattr(c, name), dtype=str, keep_default_na=False)
            if "file" in part.columns:  # relative to its own cohort folder: absolute in the merged table
                part["file"] = [str((c.out_dir / f).resolve()) for f in part["file"]]
            parts.append(part)
        paths[name] = merged / getattr(extra, name).name
        pd.concat(parts, ignore_index=True).to_csv(paths[name], index=False)
    cohort = replace(extra, out_dir=merged, **paths)
    table, dropped = study_table(cohort, out / "ingested", key)
    table.save(out / table_name)
    split = extend_split(Split.load(out / from_table / "split.json"), table.frame, table.fingerprint)
    split.save(out / table_name / "split.json")
    info = {"patients_added": patients, "seed": seed, "frames": len(table.frame),
            "roles": table.frame["role"].value_counts().to_dict(),
            "dropped_files": len(report.failures) + dropped, "unreadable_files": len(report.failures),
            "seconds": round(time.perf_counter() - t0, 1)}
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
