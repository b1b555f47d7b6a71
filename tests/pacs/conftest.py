"""A REAL Orthanc (Debian's package) on free localhost ports, with a throw-away configuration and storage
folder, and the DICOM files of the screening bundle's test patients loaded into it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pacs_kit import PASSWORD, USER, free_port, orthanc_binary, rest


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, screening_bundle):
    """Fields: base (http URL), http_port, dicom_port, ae ("ORTHANC"), scp_ae/scp_port (the C-MOVE destination
    it knows), studies ({StudyInstanceUID: [files]}), rest(method, path, body)."""
    import pydicom

    binary = orthanc_binary()
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port, scp_port = free_port(), free_port(), free_port()
    config = {
        "Name": "echoavc-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
        # the C-MOVE destination: our Storage SCP's AE title, host and port
        "DicomModalities": {"echoavc": ["ECHOAVC", "127.0.0.1", scp_port]},
        # unknown calling AE titles are rejected at association (Orthanc 1.10 does not check the called one)
        "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False, "DicomCheckModalityHost": False,
        # a result stored again under the same SOP Instance UID replaces the old one (the default keeps the old)
        "OverwriteInstances": True,
        "Plugins": [], "SaveJobs": False, "ConcurrentJobs": 1, "HttpsVerifyPeers": False,
        "DicomScuTimeout": 20, "HttpTimeout": 20, "StorageCompression": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "w")
    proc = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                            cwd=root)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rest(base, "GET", "/system")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("Orthanc did not start: " + (root / "orthanc.log").read_text()[-800:])
                time.sleep(0.1)
        studies: dict[str, list[Path]] = {}
        for f in screening_bundle.test_sources:
            rest(base, "POST", "/instances", f.read_bytes(), "application/dicom")
            uid = str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID)
            studies.setdefault(uid, []).append(f)
        yield SimpleNamespace(base=base, http_port=http_port, dicom_port=dicom_port, ae="ORTHANC",
                              scp_ae="ECHOAVC", scp_port=scp_port, studies=studies, root=root,
                              rest=lambda m, p, b=None: rest(base, m, p, b))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
