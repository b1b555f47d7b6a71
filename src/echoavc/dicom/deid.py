"""De-identification: keyed pseudonyms and the PS3.15 Basic Profile.

Pseudonyms are an HMAC of the original value under a key the user holds
(KEYFILE, created on first use), so the same patient gets the same pseudonym
in every run, and nobody without the key can reverse or recompute it.
Headers are cleaned by dicom-anonymizer's tables of PS3.15 Annex E,
Table E.1-1 (Basic Application Level Confidentiality Profile), applied at every
nesting level, with UIDs replaced by keyed, stable ones, and with the Retain
Longitudinal Temporal Information with Modified Dates Option (E.3.6): every
date moves back by a number of days drawn from the key and the patient
pseudonym, so one patient's exams keep their intervals in every run while no
original date survives.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import os
import secrets
import uuid
from datetime import date, timedelta
from pathlib import Path

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from echoavc.errors import EchoAVCError

#: Edition of Table E.1-1 whose actions are applied.
PROFILE_EDITION = "dicomfields_2026c"
PROFILE_NAME = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (2026c tables)"

#: PS3.16 CID 7050 codes of the profile and option applied (with Patient Identity Removed = YES)
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
METHOD_TEXT = "PS3.15 Basic Profile, Modified Dates Option; keyed pseudonyms"  # LO: at most 64 characters
#: a patient's dates move back by 1 to 10 years (whole days: times of day and weekdays' spacing stay)
SHIFT_DAYS = (365, 3652)
_BIRTH_DATE, _BIRTH_TIME = (0x0010, 0x0030), (0x0010, 0x0032)

_PREFIX = {"patient": "P", "study": "E", "series": "S", "instance": "I", "file": "F"}


def check_key_outside(key_path: str | Path, folder: str | Path, what: str) -> None:
    """Refuse a key inside ``folder`` before it is opened (opening creates it, and a refused run must leave none)."""
    if Path(key_path).resolve().is_relative_to(Path(folder).resolve()):
        raise EchoAVCError(f"the key must live outside the {what} (it re-identifies everything there)", key_path)


class PseudonymKey:
    """The user's secret key and the map from originals to pseudonyms kept beside it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.secret = self._load_or_create(self.path)
        self.map_path = self.path.with_name(self.path.name + ".pseudonyms.csv")
        self._known: set[tuple[str, str]] = set()
        if self.map_path.exists():
            with open(self.map_path, newline="") as fh:
                self._known = {(r["kind"], r["original"]) for r in csv.DictReader(fh)}

    @staticmethod
    def _load_or_create(path: Path) -> bytes:
        if path.exists():
            return read_key(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret.hex() + "\n")
        return secret

    def pseudonym(self, kind: str, value: str) -> str:
        return pseudonym(self.secret, kind, value)

    def uid(self, value: str) -> str:
        return keyed_uid(self.secret, value)

    def date_shift(self, patient_pseudonym: str) -> int:
        return date_shift_days(self.secret, patient_pseudonym)

    def remember(self, pairs: list[tuple[str, str, str]]) -> None:
        """Append (kind, original, pseudonym) rows not yet in the map beside the key."""
        new = [p for p in pairs if (p[0], p[1]) not in self._known]
        if not new:
            return
        fresh = not self.map_path.exists()
        with open(self.map_path, "a", newline="") as fh:
            if fresh:
                os.chmod(self.map_path, 0o600)
            w = csv.writer(fh)
            if fresh:
                w.writerow(["kind", "original", "pseudonym"])
            for kind, original, pseudo in new:
                if (kind, original) not in self._known:
                    w.writerow([kind, original, pseudo])
                    self._known.add((kind, original))


def read_key(path: str | Path) -> bytes:
    """The secret of an existing key file (never creates one: for workers of a batch whose driver made it)."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise EchoAVCError(f"cannot read the key file ({type(exc).__name__})", path) from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise EchoAVCError("key file is not a hex key written by echoavc", path) from None
    if len(secret) < 16:
        raise EchoAVCError("key file holds fewer than 128 bits", path)
    return secret


def pseudonym(secret: bytes, kind: str, value: str) -> str:
    digest = hmac.new(secret, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
    return f"{_PREFIX.get(kind, 'X')}-{base64.b32encode(digest).decode()[:12]}"


def keyed_uid(secret: bytes, value: str) -> str:
    """A stable replacement UID (2.25 root) that only the key holder can relate to ``value``."""
    # 2.25 + a UUID made from an HMAC (pydicom's generate_uid ignores entropy without a prefix)
    digest = hmac.new(secret, f"uid\x00{value}".encode(), hashlib.sha256).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def date_shift_days(secret: bytes, patient_pseudonym: str) -> int:
    """The patient's date shift in days (negative): the same for every exam and run under one key."""
    digest = hmac.new(secret, f"date-shift\x00{patient_pseudonym}".encode(), hashlib.sha256).digest()
    low, high = SHIFT_DAYS
    return -(low + int.from_bytes(digest[:8], "big") % (high - low + 1))


def parse_date(value: str) -> date | None:
    """A DA value (also the ACR-NEMA form YYYY.MM.DD that old files carry), or None."""
    text = str(value or "").strip().replace(".", "").replace("-", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def shift_date(value: str, days: int) -> str:
    """A DA value moved by ``days``; empty when it is not a date (it cannot be kept: it may still name one)."""
    day = parse_date(value)
    if day is None:
        return ""
    try:
        return (day + timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return ""


def shift_datetime(value: str, days: int) -> str:
    """A DT value with its date part moved by ``days``; time and UTC offset kept. Empty when it has no full date."""
    text = str(value or "").strip()
    moved = shift_date(text[:8], days)
    return moved + text[8:] if moved else ""


def shifted_study_date(ds: Dataset, days: int) -> str:
    """The study's date (Study Date, else Series, Acquisition or Content Date) moved by ``days``, as YYYY-MM-DD;
    empty when the file has none."""
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        day = parse_date(ds.get(keyword, ""))
        if day is not None:
            try:
                return (day + timedelta(days=days)).isoformat()
            except OverflowError:
                return ""
    return ""


def shift_dates(ds: Dataset, days: int) -> None:
    """Every DA and DT value, at every nesting level, moved by ``days``; TM values (times of day) kept."""

    def move(dataset: Dataset, element) -> None:
        if element.VR not in ("DA", "DT") or element.value in (None, ""):
            return
        one = shift_date if element.VR == "DA" else shift_datetime
        if element.VM > 1:
            element.value = [one(v, days) for v in element.value]
        else:
            element.value = one(element.value, days)

    ds.walk(move)


def deidentify_dataset(ds: Dataset, key: PseudonymKey, patient_pseudonym: str) -> Dataset:
    """Apply the Basic Profile with the Modified Dates Option in place, at every nesting level; return ``ds``.

    ``key`` needs ``secret`` and ``uid()`` (a :class:`PseudonymKey`, or the writer's bare secret holder).
    """
    from dicomanonymizer.simpledicomanonymizer import anonymize_dataset, initialize_actions

    base = initialize_actions(PROFILE_EDITION)
    u_actions = {tag for tag, action in base.items() if getattr(action, "__name__", "") == "replace_UID"}
    # the library keeps X-coded dates as 00010101; the profile says remove
    x_tags = {tag for tag, action in base.items() if getattr(action, "__name__", "") == "delete" and len(tag) == 2}

    def keyed_uid_action(dataset: Dataset, tag) -> None:
        element = dataset.get(tag)
        if element is None or element.value in (None, ""):
            return
        if element.VM > 1:
            element.value = [key.uid(v) for v in element.value]
        else:
            element.value = key.uid(element.value)

    def patient_id_action(dataset: Dataset, tag) -> None:
        if tag in dataset:
            dataset[tag].value = patient_pseudonym

    def keep(dataset: Dataset, tag) -> None:
        pass

    def empty_value(dataset: Dataset, tag) -> None:
        if tag in dataset:
            dataset[tag].value = ""  # zero length: the library's 00010101 is not a valid DA

    # Modified Dates Option: the table's dates and times (C there) are kept here and shifted below; birth date and
    # time have no C in any option, so the Basic Profile's Z (Type 2: zero length) and X stand
    dated = {tag for tag in base if len(tag) == 2 and _vr(tag) in ("DA", "DT", "TM")} - {_BIRTH_DATE, _BIRTH_TIME}
    x_tags -= dated
    # Sequences whose code starts with X: removed, except those that only reference other instances (X/Z/U*, and
    # the study and procedure step references), whose items keep their class UIDs and get keyed instance UIDs (U
    # rows themselves): a dummy value for Z or D that stays resolvable between instances under the same key.
    # The library would instead empty or overwrite every value inside, class UIDs too (Type 1 left empty).
    references = {tag for tag, action in base.items()
                  if getattr(action, "__name__", "") == "delete_or_empty_or_replace_UID" and len(tag) == 2}
    references |= {(0x0008, 0x1110), (0x0008, 0x1111)}  # Referenced Study, Referenced Performed Procedure Step
    x_sequences = {tag for tag, action in base.items() if len(tag) == 2 and _vr(tag) == "SQ" and
                   getattr(action, "__name__", "") in ("delete_or_empty", "delete_or_replace",
                                                       "delete_or_empty_or_replace")} - references

    def remove(dataset: Dataset, tag) -> None:
        if tag in dataset:
            del dataset[tag]

    rules = {tag: keyed_uid_action for tag in u_actions}
    rules.update({tag: keep for tag in dated})
    rules.update({tag: keep for tag in references if _vr(tag) == "SQ"})
    rules.update({tag: remove for tag in x_sequences})
    rules[_BIRTH_DATE] = empty_value
    rules[(0x0010, 0x0020)] = patient_id_action  # PatientID: Z/D -> the keyed pseudonym
    rules[(0x0010, 0x0010)] = patient_id_action  # PatientName: Z -> the same pseudonym, not empty

    def clean(dataset: Dataset) -> None:
        _apply(anonymize_dataset, dataset, base, rules)
        for element in list(dataset):
            if (element.tag.group, element.tag.element) in x_tags:
                del dataset[element.tag]
        for element in list(dataset):
            if element.VR == "SQ" and isinstance(element.value, Sequence):
                for item in element.value:
                    clean(item)

    clean(ds)
    shift_dates(ds, date_shift_days(key.secret, patient_pseudonym))
    if _BIRTH_DATE in ds:
        ds[_BIRTH_DATE].value = ""
    fm = getattr(ds, "file_meta", None)
    if fm is not None and "MediaStorageSOPInstanceUID" in fm and "SOPInstanceUID" in ds:
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD_TEXT
    codes = []
    for value, meaning in METHOD_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    return ds


def _vr(tag: tuple[int, int]) -> str:
    try:
        return dictionary_VR((tag[0] << 16) | tag[1])
    except KeyError:
        return ""


def _apply(anonymize_dataset, dataset: Dataset, base: dict, rules: dict) -> None:
    # The library cannot empty or replace a few VRs (OW, AT, OF, ...): such listed elements are removed first,
    # so it runs once (a second run would re-key the UIDs it already replaced).
    listed = {t for t in base if len(t) == 2}
    for element in list(dataset):
        if (element.tag.group, element.tag.element) in listed and element.VR not in _EMPTYABLE:
            del dataset[element.tag]
    anonymize_dataset(dataset, extra_anonymization_rules=rules, delete_private_tags=True,
                      base_rules_gen=lambda: dict(base))


_EMPTYABLE = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT", "DT", "DA", "TM",
              "UL", "FL", "FD", "SL", "SS", "US", "DS", "IS", "OB", "UN", "SQ"}
