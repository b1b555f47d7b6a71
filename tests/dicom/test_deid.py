"""De-identification against DICOM PS3.15 Table E.1-1 (2026c): a sentinel in every listed attribute
that a test file can hold, in a private tag and in nested sequences, must not reach any output byte; dates
reach the output only shifted (Retain Longitudinal Temporal Information with Modified Dates Option)."""

import csv
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from typer.testing import CliRunner

from testkit import DATA, shipped_file
from echoavc.cli import app
from echoavc.dicom.deid import (
    SHIFT_DAYS, PseudonymKey, date_shift_days, deidentify_dataset, keyed_uid, pseudonym, shift_date, shift_datetime,
)

TABLE = DATA / "deid" / "ps3.15_table_e1-1.csv"
DATE, DATETIME, TIME = "19020304", "19020304050607", "050607.123"
# long, distinctive digits: keyed UIDs (2.25.<39 digits>) in the output would contain a short one by chance
DECIMAL, INTEGER = "7777.7771", "1987654329"


def table_rows():
    with open(TABLE) as fh:
        return list(csv.DictReader(fh))


def token(tag: int) -> str:
    return f"ZQX{tag:08X}"


def sentinel_value(tag: int, vr: str):
    if vr in ("AE", "CS", "SH", "LO", "LT", "ST", "UT", "UC", "PN", "UR"):
        return token(tag)
    return {
        "DA": DATE, "DT": DATETIME, "TM": TIME, "DS": DECIMAL, "IS": INTEGER, "AS": "099Y",
        "UI": f"1.2.999.777.{tag}",
        "OB": token(tag).encode() + b"\0", "OW": token(tag).encode(), "UN": token(tag).encode() + b"\0",
        "US": 31337, "SS": 31337, "UL": 31337, "SL": 31337, "FL": 31337.0, "FD": 31337.0,
    }.get(vr)


def plant_sentinels(ds: Dataset) -> list[int]:
    """Put a sentinel in every listed attribute with a known VR; return the tags planted."""
    planted = []
    for row in table_rows():
        tag_text = row["tag"]
        if tag_text == "private":
            continue
        tag = int(tag_text.replace("x", "0"), 16)
        if tag >> 16 == 0x0000:
            continue  # command set elements (network messages) cannot live in a file
        target = ds.file_meta if tag >> 16 == 0x0002 else ds
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            vr = "LO"  # attributes newer than pydicom's dictionary
        if vr == "SQ":
            item = Dataset()
            item.PatientName = token(tag)
            item.add_new(0x00100020, "LO", token(tag) + "ID")
            target.add_new(tag, "SQ", Sequence([item]))
        else:
            value = sentinel_value(tag, vr)
            if value is None:
                continue
            target.add_new(tag, vr, value)
        planted.append(tag)
    # a private tag, and identifiers nested inside a sequence that is kept (ultrasound regions)
    block = ds.private_block(0x0009, "ECHOAVC TEST", create=True)
    block.add_new(0x01, "LO", "ZQXPRIVATE")
    region = ds.SequenceOfUltrasoundRegions[0]
    region.PatientName = "ZQXNESTEDNAME"
    region.PatientID = "ZQXNESTEDID"
    region.private_block(0x0011, "ECHOAVC NESTED", create=True).add_new(0x01, "LO", "ZQXNESTEDPRIVATE")
    inner = Dataset()
    inner.OperatorsName = "ZQXDEEPNAME"
    region.ReferencedStudySequence = Sequence([inner])
    return planted


# every planted token (ZQX + tag, ZQXPRIVATE, ZQXNESTED..., ZQXDEEP...): long enough never to occur by chance
TOKEN = re.compile(rb"ZQX(?:[0-9A-F]{8}|PRIVATE|NESTED[A-Z]+|DEEP[A-Z]+)")
SENTINELS = [DATE.encode(), DATETIME.encode(), TIME.encode(), DECIMAL.encode(), INTEGER.encode(),
             b"1.2.999.777"]
#: the planted date as other outputs might spell it (the manifest writes dates as YYYY-MM-DD)
DATE_FORMS = [b"1902-03-04", b"04/03/1902", b"1902.03.04"]


def kept_times(raw: bytes) -> int:
    """How many TM values of a DICOM file hold the planted time: the Modified Dates Option moves dates by whole
    days, so a time of day is kept where the table says C (and only there)."""
    from io import BytesIO

    found = []
    pydicom.dcmread(BytesIO(raw)).walk(lambda d, e: found.append(e) if e.VR == "TM" and e.value == TIME else None)
    return len(found)


def test_table_is_the_2026c_edition_with_every_row():
    rows = table_rows()
    assert len(rows) == 656
    assert {r["basic_profile"] for r in rows} <= {"X", "Z", "D", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    keywords = {r["keyword"] for r in rows}
    assert {"PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "StudyInstanceUID",
            "OperatorsName", "ReferringPhysicianName", "AccessionNumber", "DeviceSerialNumber"} <= keywords


@pytest.fixture
def planted_file(tmp_path) -> tuple[Path, list[int]]:
    ds = pydicom.dcmread(shipped_file("examples_ybr_color.dcm"))
    planted = plant_sentinels(ds)
    path = tmp_path / "in" / "exam.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    # the planted file really carries every sentinel
    raw = path.read_bytes()
    assert all(s in raw for s in SENTINELS)
    assert len(set(TOKEN.findall(raw))) > 400
    return path, planted


def test_no_sentinel_reaches_any_output_byte(planted_file, tmp_path, key_path):
    path, planted = planted_file
    assert len(planted) > 600
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["ingest", str(path.parent), "--out", str(out), "--key", str(key_path),
                                      "--qc", "--write-dicom"])
    assert result.exit_code == 0, result.output
    files = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".png", ".csv", ".dcm", ".json"} <= kinds  # frames, QC, manifest, DICOM, state records
    assert any("qc" in p.parts for p in files)
    for p in files:
        data = p.read_bytes()
        assert not TOKEN.search(data), f"{TOKEN.search(data).group()!r} leaked into {p.relative_to(out)}"
        for s in SENTINELS:
            allowed = kept_times(data) if s == TIME.encode() and p.suffix == ".dcm" else 0
            assert data.count(s) == allowed, f"{s!r} leaked into {p.relative_to(out)}"
        for s in DATE_FORMS:
            assert s not in data, f"{s!r} leaked into {p.relative_to(out)}"
        for s in SENTINELS:
            assert s.decode() not in str(p.relative_to(out))
    assert not TOKEN.search(result.output.encode())  # the log
    for s in SENTINELS:
        assert s.decode() not in result.output


def test_deidentified_dicom_applies_the_profile(planted_file, tmp_path, key_path):
    path, planted = planted_file
    out = tmp_path / "out"
    CliRunner().invoke(app, ["ingest", str(path), "--out", str(out), "--key", str(key_path), "--write-dicom"])
    [dcm] = list((out / "dicom").rglob("*.dcm"))
    ds = pydicom.dcmread(dcm)
    actions = {int(r["tag"], 16): r["basic_profile"] for r in table_rows() if "x" not in r["tag"] and r["tag"] != "private"}
    for tag in planted:
        if tag not in actions or tag not in ds:
            continue
        el = ds[tag]
        code = actions[tag]
        # dates and times are cleaned (C) under the Modified Dates Option, whatever the Basic Profile says
        assert code != "X" or el.VR in ("DA", "DT", "TM"), f"{keyword_for_tag(tag) or hex(tag)} should be removed"
        if el.VR == "SQ":
            for item in el.value:
                for sub in item:
                    assert not TOKEN.search(str(sub.value).encode())
        elif el.VR not in ("US", "SS", "UL", "SL", "FL", "FD", "AS", "TM"):
            assert str(el.value) not in (token(tag), DATE, DATETIME, TIME, DECIMAL, INTEGER, f"1.2.999.777.{tag}")
    # no private tags anywhere; UIDs replaced by keyed ones; identity marked removed
    found_private = []
    ds.walk(lambda d, e: found_private.append(e.tag) if e.tag.is_private else None)
    assert not found_private
    key = PseudonymKey(key_path)
    original = pydicom.dcmread(path)
    assert ds.StudyInstanceUID == keyed_uid(key.secret, original.StudyInstanceUID)
    assert ds.PatientID == pseudonym(key.secret, "patient", str(original.PatientID))
    assert ds.PatientIdentityRemoved == "YES"
    # Modified Dates Option: every planted date moved by the patient's keyed shift, the birth date emptied (Z: no
    # option retains it), and the options applied named by their CID 7050 codes
    shift = date_shift_days(key.secret, ds.PatientID)
    dates = [t for t in planted if t in ds and ds[t].VR == "DA" and t != 0x00100030]
    assert len(dates) > 20
    assert all(ds[t].value == shift_date(DATE, shift) for t in dates), [keyword_for_tag(t) for t in dates]
    datetimes = [t for t in planted if t in ds and ds[t].VR == "DT"]
    assert datetimes and all(ds[t].value == shift_datetime(DATETIME, shift) for t in datetimes)
    assert ds.PatientBirthDate == "" and "PatientBirthTime" not in ds and "PatientAge" not in ds
    assert [(c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence] == [
        ("113100", "DCM"), ("113107", "DCM")]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    # pixels are still an image of the original size, outside-cone pixels blacked out
    arr = ds.pixel_array
    assert arr.shape[1:3] == (original.Rows, original.Columns)
    assert arr[:, :10, :10].max() == 0


def test_deidentify_dataset_in_memory(key_path):
    ds = pydicom.dcmread(shipped_file("examples_ybr_color.dcm"))
    plant_sentinels(ds)
    key = PseudonymKey(key_path)
    deidentify_dataset(ds, key, "P-TEST")
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf)
    raw = buf.getvalue()
    assert not TOKEN.search(raw)
    for s in SENTINELS:
        assert raw.count(s) == (kept_times(raw) if s == TIME.encode() else 0)


def test_keyed_uids_are_stable_valid_and_key_bound():
    a, b = b"k" * 32, b"j" * 32
    uid = keyed_uid(a, "1.2.3.4")
    assert uid == keyed_uid(a, "1.2.3.4") != keyed_uid(b, "1.2.3.4")
    assert uid != keyed_uid(a, "1.2.3.5")
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64
    assert pseudonym(a, "patient", "X") == pseudonym(a, "patient", "X") != pseudonym(a, "study", "X")


def test_date_shift_is_per_patient_stable_key_bound_and_in_range():
    a, b = b"k" * 32, b"j" * 32
    shifts = [date_shift_days(a, f"P-{i}") for i in range(200)]
    assert all(-SHIFT_DAYS[1] <= d <= -SHIFT_DAYS[0] for d in shifts)
    assert len(set(shifts)) > 150  # patients do not share one shift
    assert date_shift_days(a, "P-1") == date_shift_days(a, "P-1") != date_shift_days(b, "P-1")


@pytest.mark.parametrize("value, days, expected", [
    ("20240229", -366, "20230228"), ("2024.02.29", -1, "20240228"), ("20240101", -1, "20231231"),
    ("", -5, ""), ("2024", -5, ""), ("20241340", -5, ""), ("not a date", -5, ""),
])
def test_shift_date(value, days, expected):
    assert shift_date(value, days) == expected


@pytest.mark.parametrize("value, expected", [
    ("20240301101500.123456+0100", "20240229101500.123456+0100"), ("20240301", "20240229"), ("2024", ""),
])
def test_shift_datetime_moves_the_date_and_keeps_time_and_offset(value, expected):
    assert shift_datetime(value, -1) == expected


def test_intervals_between_dates_survive(key_path):
    """Two files of one patient a year apart, through deidentify_dataset: the same shift, the interval to the day."""
    from datetime import date

    key = PseudonymKey(key_path)
    out = []
    for study_date in ("20190515", "20200514"):
        ds = pydicom.dcmread(shipped_file("examples_ybr_color.dcm"))
        ds.StudyDate = ds.ContentDate = study_date
        ds.AcquisitionDateTime = study_date + "083000"
        deidentify_dataset(ds, key, "P-SAME")
        out.append(ds)
    days = [date.fromisoformat(d.StudyDate[:4] + "-" + d.StudyDate[4:6] + "-" + d.StudyDate[6:]) for d in out]
    assert (days[1] - days[0]).days == 365
    assert out[0].StudyDate != "20190515" and out[0].AcquisitionDateTime == out[0].StudyDate + "083000"
