"""A synthetic study for detector benchmarks and the GPU script: synth -> ingest -> dataset build -> split.

    python benchmarks/synthetic_study.py --out DIR --patients 40 --seed 101 [--k 0] [--workers N]

Writes DIR/cohort, DIR/ingested, DIR/keys/echoavc.key, DIR/table (table.csv, split.json), and prints
one summary line. Files that ingest cannot read, and DICOM files whose frames the dataset build rejects
(e.g. a valve box outside the cone crop when the cone was found wrongly), are left out and counted: the
point here is a study to train on, and the ingest and dataset stages have their own tests and reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import echoavc  # noqa: F401  (offline-safe environment)
from echoavc.synth.study import make_study


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--frames-per-exam", type=int, default=10)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--train", type=float, default=0.8)
    ap.add_argument("--val", type=float, default=0.1)
    ap.add_argument("--test", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args(argv)
    _, _, info = make_study(a.out, a.patients, a.seed, a.frames_per_exam, a.k, a.train, a.val, a.test, a.workers)
    print(f"study {a.out}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
