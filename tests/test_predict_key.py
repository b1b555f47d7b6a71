"""``predict --key``: exam ids become the keyed study pseudonyms ``echoavc ingest`` gives the same studies."""

from __future__ import annotations

import hashlib
import re
import shutil

import pandas as pd
import pydicom
import pytest
from typer.testing import CliRunner

from echoavc.errors import EchoAVCError
from echoavc.predict import predict
from echoavc.screening import exam_id_of


def _two_studies(screening_bundle, folder):
    """One file of each of two test studies, copied into ``folder``; {file name: Study Instance UID}."""
    folder.mkdir()
    uids: dict[str, str] = {}
    for f in screening_bundle.test_sources:
        uid = str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID)
        if uid not in uids.values():
            name = f"{len(uids)}-{f.name}"  # the studies' files share names (US01.dcm)
            uids[name] = uid
            shutil.copy(f, folder / name)
        if len(uids) == 2:
            break
    assert len(uids) == 2
    return uids


def _ids(rep) -> dict[str, str]:
    """{file name: exam id} from predict's frames."""
    return {f["source"].rsplit("/", 1)[-1]: f["exam_id"] for f in rep.frames}


def _run(screening_bundle, inputs, out, key=None):
    return predict([inputs], screening_bundle.bundle, out, settings=screening_bundle.settings, overlays="none",
                   report=False, progress=False, key=key)


def test_keyed_exam_ids_are_ingest_study_ids_and_a_new_key_rescreens(screening_bundle, tmp_path, key_path):
    from echoavc.ingest import ingest

    inputs = tmp_path / "exams"
    uids = _two_studies(screening_bundle, inputs)
    assert not key_path.exists()
    ingested = ingest([inputs], tmp_path / "ingested", key_path, workers=1, progress=False)
    assert not ingested.failures
    manifest = pd.read_csv(tmp_path / "ingested" / "manifest.csv", dtype=str)
    study_of = dict(zip(manifest["source_sha256"], manifest["study_id"]))
    want = {name: study_of[hashlib.sha256((inputs / name).read_bytes()).hexdigest()] for name in uids}

    out = tmp_path / "out"
    keyed = _run(screening_bundle, inputs, out, key_path)
    assert _ids(keyed) == want and all(re.fullmatch(r"E-[A-Z2-7]{12}", v) for v in want.values())
    assert {e["exam_id"] for e in keyed.exams} == set(want.values())
    assert set(pd.read_csv(out / "exams.csv")["exam_id"]) == set(want.values())
    # the key itself is nowhere in the results
    secret = key_path.read_text().strip()
    assert not any(secret in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())

    again = _run(screening_bundle, inputs, out, key_path)
    assert (again.resumed, again.done) == (2, 0) and _ids(again) == want
    # another key names the exams otherwise: screened again, not resumed with the old ids
    other = tmp_path / "keys2" / "other.key"
    moved = _run(screening_bundle, inputs, out, other)
    assert (moved.resumed, moved.done) == (0, 2)
    from echoavc.dicom.deid import PseudonymKey

    k2 = PseudonymKey(other)
    assert _ids(moved) == {name: k2.pseudonym("study", uid) for name, uid in uids.items()}
    # without a key: the unkeyed hash, as before
    plain = _run(screening_bundle, inputs, out)
    assert (plain.resumed, plain.done) == (0, 2)
    assert _ids(plain) == {name: exam_id_of(uid) for name, uid in uids.items()}
    assert all(re.fullmatch(r"E[0-9a-f]{10}", v) for v in _ids(plain).values())


def test_two_workers_get_the_key(screening_bundle, tmp_path, key_path):
    inputs = tmp_path / "exams"
    uids = _two_studies(screening_bundle, inputs)
    rep = predict([inputs], screening_bundle.bundle, tmp_path / "out", settings=screening_bundle.settings,
                  overlays="none", report=False, progress=False, workers=2, key=key_path)
    secret = bytes.fromhex(key_path.read_text().strip())
    assert _ids(rep) == {name: exam_id_of(uid, secret) for name, uid in uids.items()}


def test_a_key_inside_the_results_folder_is_refused(screening_bundle, tmp_path):
    from echoavc.cli import app

    inputs = tmp_path / "exams"
    _two_studies(screening_bundle, inputs)
    out = tmp_path / "out"
    with pytest.raises(EchoAVCError, match="outside the results folder"):
        _run(screening_bundle, inputs, out, out / "keys" / "echoavc.key")
    assert not (out / "keys").exists()
    r = CliRunner().invoke(app, ["predict", str(inputs), "--model", str(screening_bundle.bundle), "--out", str(out),
                                 "--key", str(out / "echoavc.key"), "--no-progress"])
    assert r.exit_code == 2 and "outside the results folder" in r.output, r.output  # cliutil.fail
    assert len(r.output.strip().splitlines()) == 1 and not (out / "echoavc.key").exists()
