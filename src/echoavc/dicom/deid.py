"""De-identification: keyed pseudonyms and the PS3.15 Basic Profile.

Pseudonyms are an HMAC of the original value under a key the user holds
(KEYFILE, created on first use), so the same patient gets the same pseudonym
in every run, and nobody without the key can reverse or recompute it.
Headers are cleaned by dicom-anonymizer's tables of PS3.15 Annex E,
Table E.1-1 (Basic Application Level Confidentiality Profile), applied at every
nesting level, with UIDs replaced by keyed, stable ones.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import os
import secrets
import uuid
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from echoavc.errors import EchoAVCError

#: Edition of Table E.1-1 whose actions are applied.
PROFILE_EDITION = "dicomfields_2026c"
PROFILE_NAME = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (2026c tables)"

_PREFIX = {"patient": "P", "study": "E", "series": "S", "instance": "I", "file": "F"}


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
            text = path.read_text().strip()
            try:
                secret = bytes.fromhex(text)
            except ValueError:
                raise EchoAVCError("key file is not a hex key written by echoavc", path) from None
            if len(secret) < 16:
                raise EchoAVCError("key file holds fewer than 128 bits", path)
            return secret
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


def pseudonym(secret: bytes, kind: str, value: str) -> str:
    digest = hmac.new(secret, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
    return f"{_PREFIX.get(kind, 'X')}-{base64.b32encode(digest).decode()[:12]}"


def keyed_uid(secret: bytes, value: str) -> str:
    """A stable replacement UID (2.25 root) that only the key holder can relate to ``value``."""
    # 2.25 + a UUID made from an HMAC (pydicom's generate_uid ignores entropy without a prefix)
    digest = hmac.new(secret, f"uid\x00{value}".encode(), hashlib.sha256).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def deidentify_dataset(ds: Dataset, key: PseudonymKey, patient_pseudonym: str) -> Dataset:
    """Apply the Basic Profile in place, at every nesting level; return ``ds``."""
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

    rules = {tag: keyed_uid_action for tag in u_actions}
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
    fm = getattr(ds, "file_meta", None)
    if fm is not None and "MediaStorageSOPInstanceUID" in fm and "SOPInstanceUID" in ds:
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "echoavc: PS3.15 Basic Profile, keyed pseudonyms"  # LO: 64 characters at most
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    return ds


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
