"""The listener's DICOM service and queue without a model: what is acknowledged is on disk, what is refused is
not, and only the allowed callers get in."""

from __future__ import annotations

import json
import os
import time

import pydicom
import pytest

from echoavc.dicom.deid import PseudonymKey
from echoavc.errors import EchoAVCError
from echoavc.listen.queue import ListenQueue, queue_status
from echoavc.listen.scp import StoreService, parse_allow

from listen_kit import CT_IMAGE, echo, free_port, send, tiny_us


@pytest.fixture
def service(tmp_path, key_path):
    def start(allow=None, tls=None):
        q = ListenQueue(tmp_path / "queue", echo=False)
        svc = StoreService(q, PseudonymKey(key_path), port=free_port(), allow=allow, tls=tls).start()
        started.append(svc)
        return svc

    started = []
    yield start
    for s in started:
        s.stop()


def queued(svc) -> list:
    return sorted(svc.queue.studies.rglob("*.dcm"))


def test_echo_store_and_refused_sop_class(service):
    svc = service()
    assert echo(svc.port) == 0
    study = tiny_us()
    assert send(svc.port, [study, tiny_us(study.StudyInstanceUID)]) == [0, 0]
    files = queued(svc)
    assert len(files) == 2 and len({f.parent for f in files}) == 1
    back = pydicom.dcmread(files[0])
    assert back.StudyInstanceUID == study.StudyInstanceUID  # the instance itself, byte for byte decodable
    # the folder and file names are keyed pseudonyms, not UIDs
    assert study.StudyInstanceUID not in str(files[0]) and files[0].parent.name.startswith("E-")
    # a CT image: the presentation context is refused, nothing is stored
    assert send(svc.port, [tiny_us(sop_class=CT_IMAGE)]) is None  # no accepted context: no association
    assert len(queued(svc)) == 2
    assert f"study,{study.StudyInstanceUID},{files[0].parent.name}" in svc.key.map_path.read_text()
    log = (svc.queue.root / "listen.jsonl").read_text()
    assert "received" in log and study.StudyInstanceUID not in log and "PAT-SECRET" not in log


def test_allow_needs_title_and_address(service):
    svc = service(["SCANNER@127.0.0.1", "OTHER@10.0.0.0/8"])
    assert send(svc.port, [tiny_us()], calling="SCANNER") == [0]
    assert send(svc.port, [tiny_us()], calling="INTRUDER") is None  # unknown title: rejected
    assert send(svc.port, [tiny_us()], calling="OTHER") is None  # a listed title from another address
    assert len(queued(svc)) == 1
    errors = queue_status(svc.queue.root)["last_errors"]
    assert [e["event"] for e in errors] == ["association_refused"] * 2
    with pytest.raises(EchoAVCError, match="AE@ADDRESS"):
        parse_allow(["SCANNER"])


def test_write_failure_answers_failure(service, monkeypatch):
    svc = service()
    monkeypatch.setenv("ECHOAVC_FAULT", "write_fail")
    assert send(svc.port, [tiny_us()]) == [0xA700]
    assert queued(svc) == [] and not list(svc.queue.root.rglob("*.tmp"))
    (err,) = queue_status(svc.queue.root)["last_errors"]
    assert err["event"] == "store_failed" and "No space left" in err["reason"]


def test_sender_dropping_keeps_what_was_acknowledged(service):
    svc = service()
    study = tiny_us()
    statuses = send(svc.port, [study, tiny_us(study.StudyInstanceUID), tiny_us(study.StudyInstanceUID)],
                    abort_after=2)
    assert statuses == [0, 0]
    time.sleep(0.3)
    assert len(queued(svc)) == 2
    assert "association_aborted" in (svc.queue.root / "listen.jsonl").read_text()


def test_queue_pending_reopen_and_purge(tmp_path):
    q = ListenQueue(tmp_path / "q", echo=False)
    q.store("E-A", "I-1", b"one")
    q.store("E-A", "I-2", b"two")
    assert q.quiet_studies(3600) == [] and q.quiet_studies(0) == ["E-A"]
    q.mark_screened("E-A", q.files("E-A"))
    assert q.quiet_studies(0) == []
    q.store("E-A", "I-3", b"late")  # a late instance re-opens the study
    assert list(q.pending("E-A")) == ["I-3.dcm"] and q.quiet_studies(0) == ["E-A"]
    assert queue_status(q.root)["studies_pending"] == 1
    (q.outbox / "E-A").mkdir()
    (q.outbox / "E-A" / "sr.dcm").write_bytes(b"x")
    assert q.purge(0) == []  # results not forwarded yet: the instances stay
    q.forwarded("E-A")
    q.purge(0)
    assert sorted(q.files("E-A")) == ["I-3.dcm"]  # the unscreened instance stays
    q.mark_screened("E-A", q.files("E-A"))
    assert q.purge(0) == ["E-A"] and not (q.studies / "E-A").exists()
    st = queue_status(q.root)
    assert st["instances_queued"] == 0 and st["forwards_pending"] == 0
    assert json.dumps(st)
    assert oct(os.stat(q.root).st_mode & 0o777) == "0o700"


def make_cert(folder, name: str, ip: bool = False):
    """A self-signed EC certificate and key made by openssl (the tests' own throw-away PKI)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    crt, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", f"/CN={name}",
                    *(["-addext", "subjectAltName=IP:127.0.0.1"] if ip else [])], check=True, capture_output=True)
    return crt, key


def test_tls_with_client_certificates(service, tmp_path):
    import ssl

    server_crt, server_key = make_cert(tmp_path, "server", ip=True)
    client_crt, client_key = make_cert(tmp_path, "client")
    other_crt, other_key = make_cert(tmp_path, "other")
    svc = service(tls=(server_crt, server_key, client_crt))

    def client(crt=None, key=None):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_crt))
        if crt:
            ctx.load_cert_chain(str(crt), str(key))
        return ctx

    assert echo(svc.port, tls=client(client_crt, client_key)) == 0
    assert echo(svc.port) is None  # no TLS: no association
    assert echo(svc.port, tls=client()) is None  # TLS without a client certificate
    assert echo(svc.port, tls=client(other_crt, other_key)) is None  # a certificate the CA did not sign
    with pytest.raises(EchoAVCError, match="TLS certificate"):
        StoreService(svc.queue, svc.key, tls=(tmp_path / "missing.crt", server_key))
