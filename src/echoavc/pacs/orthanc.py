"""Orthanc's REST API, the few calls screening needs (standard library HTTP: no new dependency).

Orthanc names its resources by its own ids, not by DICOM UIDs; ``/tools/find`` maps a Study Instance UID to
them. Credentials come from the environment (``ECHOAVC_ORTHANC_USER``, ``ECHOAVC_ORTHANC_PASSWORD``) or a file
holding ``user:password`` on one line (``ECHOAVC_ORTHANC_CREDENTIALS`` or the ``credentials`` argument),
never from the command line, where any user of the machine can read them.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from echoavc.errors import EchoAVCError

USER_ENV, PASSWORD_ENV, FILE_ENV = "ECHOAVC_ORTHANC_USER", "ECHOAVC_ORTHANC_PASSWORD", "ECHOAVC_ORTHANC_CREDENTIALS"


def credentials(file: str | Path | None = None) -> tuple[str, str] | None:
    """(user, password) from ``file``, else the environment; None when neither gives any."""
    file = file or os.environ.get(FILE_ENV)
    if file:
        try:
            text = Path(file).read_text().strip()
        except OSError as exc:
            raise EchoAVCError(f"cannot read the credentials file ({exc.strerror})", file) from None
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise EchoAVCError("credentials file must hold one line user:password", file)
        return user, password
    user = os.environ.get(USER_ENV)
    if user:
        return user, os.environ.get(PASSWORD_ENV, "")
    return None


class Orthanc:
    """One Orthanc server at ``base`` (``http://HOST:PORT``)."""

    def __init__(self, base: str, auth: tuple[str, str] | None = None, timeout: float = 60.0):
        self.base = base.rstrip("/")
        self.timeout = timeout
        self._auth = ("Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()) if auth else None

    def request(self, method: str, path: str, body: bytes | dict | list | None = None,
                content_type: str = "application/json") -> bytes:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", content_type)
        if self._auth:
            req.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise EchoAVCError(f"Orthanc refused the credentials (HTTP 401); set {USER_ENV} and "
                                   f"{PASSWORD_ENV} or {FILE_ENV}", self.base) from None
            if exc.code == 403:
                raise EchoAVCError(f"Orthanc forbids {method} {path} (HTTP 403)", self.base) from None
            raise EchoAVCError(f"Orthanc answered HTTP {exc.code} to {method} {path}", self.base) from None
        except urllib.error.URLError as exc:
            reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
            raise EchoAVCError(f"cannot reach Orthanc ({reason})", self.base) from None
        except (TimeoutError, OSError) as exc:
            raise EchoAVCError(f"cannot reach Orthanc ({type(exc).__name__}: {exc})", self.base) from None

    def json(self, method: str, path: str, body=None):
        raw = self.request(method, path, body)
        try:
            return json.loads(raw)
        except ValueError:
            raise EchoAVCError(f"Orthanc's answer to {path} is not JSON", self.base) from None

    def find(self, level: str, query: dict) -> list[str]:
        """Orthanc ids of the resources at ``level`` (Study, Series, Instance) matching ``query``."""
        return list(self.json("POST", "/tools/find", {"Level": level, "Query": query}))

    def study_uids(self, query: dict) -> list[str]:
        """Study Instance UIDs of the studies matching a DICOM query (PatientID, StudyDate range ...)."""
        found = self.json("POST", "/tools/find", {"Level": "Study", "Query": query, "Expand": True})
        return sorted(str(s["MainDicomTags"]["StudyInstanceUID"]) for s in found)

    def study_id(self, study_uid: str) -> str:
        ids = self.find("Study", {"StudyInstanceUID": study_uid})
        if not ids:
            raise EchoAVCError(f"study {study_uid} not found", self.base)
        return ids[0]

    def series(self, study_id: str) -> list[dict]:
        return list(self.json("GET", f"/studies/{study_id}/series"))

    def instance_ids(self, series_id: str) -> list[str]:
        return [i["ID"] for i in self.json("GET", f"/series/{series_id}/instances")]

    def instance_file(self, instance_id: str) -> bytes:
        return self.request("GET", f"/instances/{instance_id}/file")

    def instance_id(self, sop_uid: str) -> str | None:
        ids = self.find("Instance", {"SOPInstanceUID": sop_uid})
        return ids[0] if ids else None

    def upload(self, data: bytes, sop_uid: str) -> str:
        """Store one instance, replacing any earlier one with the same SOP Instance UID (Orthanc keeps the
        first copy unless told to overwrite). Returns Orthanc's id."""
        old = self.instance_id(sop_uid)
        if old is not None:
            self.request("DELETE", f"/instances/{old}")
        ans = json.loads(self.request("POST", "/instances", data, "application/dicom"))
        return ans["ID"]


__all__ = ["Orthanc", "credentials", "USER_ENV", "PASSWORD_ENV", "FILE_ENV"]
