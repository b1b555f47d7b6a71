"""Patient splits: no patient in two parts for any seed and k; stratified; fingerprinted; read back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from echoavc.dataset.split import PARTS, Split, extend_split, make_split, paper_image_split, patient_strata
from echoavc.errors import EchoAVCError
from echoavc.settings import SplitSettings


def _table(n_patients: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        grades = sorted(rng.integers(0, 4, size=int(rng.integers(1, 4))))  # grade may progress between exams
        for e, g in enumerate(grades):
            for f in range(int(rng.integers(1, 4))):
                rows.append({"patient_id": f"P-{p:04d}", "study_id": f"E-{p}-{e}", "key": f"{p}{e}:{f}",
                             "grade": int(g), "calcified": int(g > 0)})
    return pd.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(0, 7), n=st.integers(8, 80))
def test_no_patient_in_two_parts_for_any_seed_and_k(seed, k, n):
    table = _table(n, seed % 1000)
    s = make_split(table, SplitSettings(seed=seed, k=k))
    assert set(s.patients) == set(table["patient_id"])
    k_eff = k if k > 1 else 0
    for fold in [None] + list(range(k_eff)):
        parts = s.parts(fold)
        assert sum(len(v) for v in parts.values()) == n
        assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) \
            and not (parts["val"] & parts["test"])
        assert parts["test"] == s.parts(None)["test"]  # the test part never moves between folds
    if k_eff:
        vals = [s.parts(f)["val"] for f in range(k_eff)]
        non_test = set(s.patients) - s.parts(None)["test"]
        assert set().union(*vals) == non_test and sum(map(len, vals)) == len(non_test)  # folds partition
    counts = {p: len(v) for p, v in s.parts(None).items()}
    assert abs(counts["test"] - 0.1 * n) <= 1.5 and abs(counts["train"] - 0.8 * n) <= 1.5


def test_stratified_by_highest_grade():
    table = _table(200, 1)
    strata = patient_strata(table)
    top = table.groupby("patient_id")["grade"].max()
    assert all(strata[p] == f"grade={int(g)}" for p, g in top.items())
    s = make_split(table, SplitSettings(seed=3, k=5))
    for stratum in set(strata.values()):
        members = [p for p, v in strata.items() if v == stratum]
        test_share = sum(s.patients[p]["part"] == "test" for p in members) / len(members)
        assert abs(test_share - 0.1) < 0.06, (stratum, test_share)
        folds = [s.patients[p]["fold"] for p in members if s.patients[p]["part"] != "test"]
        assert max(np.bincount(folds, minlength=5)) - min(np.bincount(folds, minlength=5)) <= 1


def test_deterministic_saved_fingerprinted_and_tamper_evident(tmp_path):
    table = _table(30, 2)
    a, b = make_split(table, SplitSettings(seed=7)), make_split(table, SplitSettings(seed=7))
    assert a.patients == b.patients and a.fingerprint == b.fingerprint
    c = make_split(table, SplitSettings(seed=8))
    assert c.fingerprint != a.fingerprint
    path = a.save(tmp_path / "split.json")
    doc = json.loads(path.read_text())
    for field in ("seed", "k", "fractions", "stratify", "fingerprint", "patients"):
        assert field in doc
    loaded = Split.load(path)
    assert loaded.patients == a.patients and loaded.fingerprint == a.fingerprint
    victim = next(p for p, r in doc["patients"].items() if r["part"] == "test")
    doc["patients"][victim]["part"] = "train"
    path.write_text(json.dumps(doc))
    with pytest.raises(EchoAVCError, match="fingerprint"):
        Split.load(path)


def test_bad_fractions_and_folds():
    table = _table(20, 0)
    with pytest.raises(EchoAVCError, match="sum to 1"):
        make_split(table, SplitSettings(train=0.8, val=0.3, test=0.1))
    s = make_split(table, SplitSettings(k=3))
    with pytest.raises(EchoAVCError, match="fold 3"):
        s.parts(3)


def test_paper_image_split_shares_patients_and_copies():
    items = [{"patient_id": f"P{p}", "source_key": f"{p}:{f}", "variant": v}
             for p in range(20) for f in range(3) for v in ("original", "rotation+10", "rotation-10")]
    a = paper_image_split(items, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert a.report["leaky"] is True and "LEAKY" in a.report["warning"]
    assert a.report["patients_in_several_parts"] > 0
    assert a.report["frames_with_copies_in_several_parts"] > 0
    assert sorted(set(a.parts)) == sorted(PARTS)


def test_an_extended_split_keeps_every_known_patient_in_its_part_and_splits_the_new_ones(tmp_path):
    """A stage trained on the first table's training patients must never meet the grown table's validation or
    test patients (the demo's detector trains on the first patients while the classifier's are added)."""
    first = _table(30, 1)
    more = _table(60, 2).assign(patient_id=lambda d: "Q" + d["patient_id"])
    base = make_split(first, SplitSettings(train=0.7, val=0.2, test=0.1, k=0, seed=5))
    grown = extend_split(base, pd.concat([first, more]), "sha256:t")
    assert all(grown.patients[p]["part"] == r["part"] for p, r in base.patients.items())
    assert set(grown.patients) == set(first["patient_id"]) | set(more["patient_id"])
    new = [r["part"] for p, r in grown.patients.items() if p.startswith("Q")]
    assert [new.count(x) for x in PARTS] == [42, 12, 6]  # the base's fractions, over the new patients alone
    assert grown.fractions == base.fractions and grown.seed == base.seed and grown.table_fingerprint == "sha256:t"
    assert Split.load(grown.save(tmp_path / "s.json")).patients == grown.patients
    with pytest.raises(EchoAVCError, match="folds"):
        extend_split(make_split(first, SplitSettings(k=3)), first)
