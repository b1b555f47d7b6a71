"""Orthanc sends a study to ``echoavc listen`` through its modality entry; the listener screens it and stores
the SR and SC back in Orthanc (issue 21, with the DICOM-results issue's Orthanc fixture)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest

from echoavc.listen import Listener, queue_status
from echoavc.settings import ListenSettings

SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"


def classes_in(orthanc, study_uid: str) -> list[str]:
    (sid,) = orthanc.rest("POST", "/tools/find", json.dumps(
        {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}).encode())
    return sorted(orthanc.rest("GET", f"/instances/{i['ID']}/simplified-tags")["SOPClassUID"]
                  for i in orthanc.rest("GET", f"/studies/{sid}/instances"))


def test_orthanc_sends_listener_forwards_back(orthanc, screening_bundle, tmp_path, key_path):
    uid = sorted(orthanc.studies)[0]
    originals = classes_in(orthanc, uid)
    # our AE title and port are the ones Orthanc lists as the modality "echoavc"; results go back to Orthanc
    settings = replace(ListenSettings(), ae_title=orthanc.scp_ae, port=orthanc.scp_port, quiet_s=1.0, poll_s=0.2)
    node = Listener(screening_bundle.bundle, tmp_path / "out", tmp_path / "queue", key_path,
                    forward=f"{orthanc.ae}@127.0.0.1:{orthanc.dicom_port}", allow=["ORTHANC@127.0.0.1"],
                    settings=settings, screening=screening_bundle.settings, echo_log=False).start()
    loop = threading.Thread(target=node.run, daemon=True)
    loop.start()
    try:
        (sid,) = orthanc.rest("POST", "/tools/find", json.dumps(
            {"Level": "Study", "Query": {"StudyInstanceUID": uid}}).encode())
        orthanc.rest("POST", "/modalities/echoavc/store", sid.encode())  # Orthanc's own C-STORE to us
        deadline = time.monotonic() + 90
        while node.counters.forwarded < 1 or queue_status(node.queue.root)["instances_queued"]:
            if time.monotonic() > deadline:
                pytest.fail(f"not forwarded: {queue_status(node.queue.root)}")
            time.sleep(0.2)
    finally:
        node.stop()
        loop.join(30)
    assert sorted(classes_in(orthanc, uid)) == sorted(originals + [SR_CLASS, SC_CLASS])
    assert node.counters.screened == 1
