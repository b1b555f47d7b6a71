"""Patient splits: one file, saved once, read by every later stage.

:func:`make_split` assigns every pseudonymous patient to one part (train/val/test,
default 80/10/10) and, for the train+val patients, to one of ``k`` folds; both
stratified by the patient's highest grade over all exams (``calcified`` when no grade;
``unlabelled`` when neither). Fold ``f`` means: validation = the patients of fold ``f``,
training = the other train+val patients, test = the test part (never in a fold).
A patient is in exactly one part for every fold.

The split file (JSON) holds the seed, k, fractions, the stratification, every
patient's part, fold and stratum, the table it was made from, and a fingerprint
(sha256 of its canonical content) that later stages record; loading checks it.

:func:`paper_image_split` is the paper's protocol (augment and duplicate, then split
images at random): made on the fly only to reproduce its numbers, marked leaky, with
the patients and augmented copies it shares across parts counted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from echoavc.files import atomic_write_text
from echoavc.errors import EchoAVCError
from echoavc.settings import SplitSettings

PARTS = ("train", "val", "test")
SPLIT_FORMAT = "echoavc-split/1"
STRATIFY = "highest grade per patient over all exams (calcified 0/1 when no grade; 'unlabelled' when neither)"


def patient_strata(table: pd.DataFrame) -> dict[str, str]:
    """Each patient's stratum: ``grade=<max grade>``, else ``calcified=<max>``, else ``unlabelled``."""
    out = {}
    for pid, g in table.groupby("patient_id", sort=True):
        grades = pd.to_numeric(g["grade"], errors="coerce").dropna()
        cal = pd.to_numeric(g["calcified"], errors="coerce").dropna()
        if len(grades):
            out[str(pid)] = f"grade={int(grades.max())}"
        elif len(cal):
            out[str(pid)] = f"calcified={int(cal.max())}"
        else:
            out[str(pid)] = "unlabelled"
    return out


def _apportion(n: int, fractions: list[float], offset: float) -> list[int]:
    """Part index for positions 0..n-1, interleaved so any run of positions is split close to ``fractions``."""
    counts = np.zeros(len(fractions))
    f = np.asarray(fractions, dtype=float)
    out = []
    for i in range(n):
        deficit = f * (i + 1 + offset) - counts
        p = int(np.argmax(deficit))
        counts[p] += 1
        out.append(p)
    return out


@dataclass
class Split:
    """Patient -> part (and fold); with how it was made and a fingerprint."""

    patients: dict[str, dict]  #: patient -> {"part", "fold" (None for test), "stratum"}
    seed: int
    k: int
    fractions: dict[str, float]
    stratify: str = STRATIFY
    table_fingerprint: str | None = None
    fingerprint: str = ""
    path: Path | None = field(default=None, compare=False)

    def content(self) -> dict:
        return {"format": SPLIT_FORMAT, "unit": "patient", "leaky": False, "seed": self.seed, "k": self.k,
                "fractions": self.fractions, "stratify": self.stratify, "table_fingerprint": self.table_fingerprint,
                "patients": {p: self.patients[p] for p in sorted(self.patients)}}

    def compute_fingerprint(self) -> str:
        canon = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()

    def part_of(self, patient: str, fold: int | None = None) -> str:
        rec = self.patients.get(patient)
        if rec is None:
            raise EchoAVCError(f"patient {patient} is not in the split (made from another table?)", self.path)
        if fold is None or rec["part"] == "test":
            return rec["part"]
        return "val" if rec["fold"] == fold else "train"

    def parts(self, fold: int | None = None) -> dict[str, set[str]]:
        if fold is not None and not (0 <= fold < self.k and self.k > 1):
            raise EchoAVCError(f"fold {fold} does not exist: the split has k={self.k} folds (0..{self.k - 1})",
                               self.path)
        out = {p: set() for p in PARTS}
        for pid in self.patients:
            out[self.part_of(pid, fold)].add(pid)
        return out

    def summary(self) -> dict:
        return {part: dict(sorted(Counter(r["stratum"] for r in self.patients.values() if r["part"] == part).items()))
                for part in PARTS}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        doc = {**self.content(), "fingerprint": self.compute_fingerprint(), "summary": self.summary()}
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
        self.fingerprint, self.path = doc["fingerprint"], path
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise EchoAVCError("no such split file", path) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EchoAVCError("split file is not JSON", path) from None
        if doc.get("format") != SPLIT_FORMAT:
            raise EchoAVCError(f"not an echoavc split file (format {doc.get('format')!r})", path)
        s = cls({p: dict(r) for p, r in doc["patients"].items()}, int(doc["seed"]), int(doc["k"]),
                dict(doc["fractions"]), doc.get("stratify", STRATIFY), doc.get("table_fingerprint"),
                doc.get("fingerprint", ""), path)
        if s.compute_fingerprint() != s.fingerprint:
            raise EchoAVCError("split file was edited after it was written (fingerprint does not match): "
                               "make a new one with echoavc dataset split", path)
        return s


def make_split(table: pd.DataFrame, settings: SplitSettings | None = None,
               table_fingerprint: str | None = None) -> Split:
    """Stratified patient split with ``k`` folds over the train+val patients. Deterministic in the seed."""
    s = settings or SplitSettings()
    fr = [s.train, s.val, s.test]
    if any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise EchoAVCError(f"split fractions must be >= 0 and sum to 1 (got {s.train}, {s.val}, {s.test})")
    if (table["patient_id"].astype(str).str.strip() == "").any():
        raise EchoAVCError("the table has frames without a patient id: they cannot be split by patient")
    strata = patient_strata(table)
    if not strata:
        raise EchoAVCError("the table has no patients")
    rng = np.random.default_rng(s.seed)
    # order: strata in a fixed order, patients shuffled within each; then interleave parts along it
    order = []
    for st in sorted(set(strata.values())):
        members = sorted(p for p, v in strata.items() if v == st)
        order += [members[i] for i in rng.permutation(len(members))]
    parts = _apportion(len(order), fr, float(rng.uniform(0, 1)))
    patients = {p: {"part": PARTS[parts[i]], "fold": None, "stratum": strata[p]} for i, p in enumerate(order)}
    k = int(s.k) if s.k and s.k > 1 else 0
    if k:
        pool = [p for p in order if patients[p]["part"] != "test"]
        if len(pool) < k:
            raise EchoAVCError(f"{len(pool)} train+val patients cannot make {k} folds")
        start = int(rng.integers(k))
        for i, p in enumerate(pool):  # stratified round robin along the stratum-sorted order
            patients[p]["fold"] = (i + start) % k
    split = Split(patients, int(s.seed), k, {"train": s.train, "val": s.val, "test": s.test},
                  table_fingerprint=table_fingerprint)
    split.fingerprint = split.compute_fingerprint()
    return split


def extend_split(split: Split, table: pd.DataFrame, table_fingerprint: str | None = None) -> Split:
    """``split`` grown to the patients of ``table``: every patient it already holds keeps its part (so a model
    trained on its training patients never meets its validation or test patients), and the new patients are
    split among themselves with the same fractions and seed, as :func:`make_split` would. Folds are not
    carried over (``k`` must be 0)."""
    if split.k:
        raise EchoAVCError("a split with folds cannot be extended: make a new one", split.path)
    known = set(split.patients)
    new_rows = table[~table["patient_id"].astype(str).isin(known)]
    patients = {p: dict(r) for p, r in split.patients.items()}
    if len(new_rows):
        f = split.fractions
        added = make_split(new_rows, SplitSettings(train=f["train"], val=f["val"], test=f["test"], k=0,
                                                   seed=split.seed))
        patients.update(added.patients)
    out = Split(patients, split.seed, 0, dict(split.fractions), split.stratify, table_fingerprint=table_fingerprint)
    out.fingerprint = out.compute_fingerprint()
    return out


# ---------------------------------------------------------------- the paper's leaky protocol


@dataclass
class LeakyAssignment:
    """The paper's image-level split of a pool of images (originals and their augmented copies)."""

    parts: list[str]  #: one part per item, in the order given
    report: dict  #: patients and augmented copies shared across parts; always ``leaky: True``


def paper_image_split(items: list[dict], fractions: dict[str, float], seed: int) -> LeakyAssignment:
    """Split ``items`` (dicts with ``patient_id`` and ``source_key``, the original frame an augmented copy came
    from) at random by image, as the paper did. Parts with a zero fraction get nothing."""
    rng = np.random.default_rng(seed)
    n = len(items)
    names = [p for p in PARTS if fractions.get(p, 0) > 0]
    fr = np.array([fractions[p] for p in names], dtype=float)
    fr = fr / fr.sum()
    counts = np.floor(fr * n).astype(int)
    counts[0] += n - counts.sum()
    perm = rng.permutation(n)
    parts = [""] * n
    pos = 0
    for name, c in zip(names, counts):
        for j in perm[pos:pos + c]:
            parts[int(j)] = name
        pos += c
    by_patient: dict[str, set[str]] = {}
    by_source: dict[str, set[str]] = {}
    for it, part in zip(items, parts):
        by_patient.setdefault(it["patient_id"], set()).add(part)
        by_source.setdefault(it["source_key"], set()).add(part)
    shared_patients = sorted(p for p, s in by_patient.items() if len(s) > 1)
    shared_sources = sorted(k for k, s in by_source.items() if len(s) > 1)
    copies_leaked = sum(1 for it, part in zip(items, parts)
                        if it.get("variant", "original") != "original" and len(by_source[it["source_key"]]) > 1
                        and part != "train")
    report = {
        "leaky": True, "unit": "image", "seed": int(seed), "fractions": {p: float(fractions.get(p, 0)) for p in PARTS},
        "images": n, "patients": len(by_patient),
        "patients_in_several_parts": len(shared_patients),
        "frames_with_copies_in_several_parts": len(shared_sources),
        "augmented_or_duplicated_copies_outside_train_with_kin_elsewhere": copies_leaked,
        "warning": "LEAKY: the paper's image-level protocol (augment/duplicate, then split images). One patient's "
                   "images, and copies of one image, sit on both sides of the split; its metrics are optimistic. "
                   "Use only to reproduce the paper.",
    }
    return LeakyAssignment(parts, report)
