"""Helpers of the PACS tests (a module of its own: ``conftest`` names several modules in this suite)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import urllib.request

import pytest

USER, PASSWORD = "echoavc-test", "not-a-real-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_binary() -> str:
    """Debian installs Orthanc in /usr/sbin, often off a user's PATH. CI must have it (.ci/run installs it)."""
    found = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
                                            if os.access(p, os.X_OK)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the Orthanc binary is missing (apt-get install orthanc; .ci/run does)")
        pytest.skip("Orthanc not installed (apt-get install orthanc)")
    return found


def rest(base: str, method: str, path: str, body: bytes | None = None, ctype: str = "application/json"):
    req = urllib.request.Request(base + path, data=body, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    if body is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
    return json.loads(raw) if raw[:1] in (b"{", b"[") else raw
