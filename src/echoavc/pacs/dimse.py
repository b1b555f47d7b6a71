"""Any PACS over DIMSE (pynetdicom): C-FIND a study's series, C-MOVE them to a Storage SCP of ours, C-STORE results.

C-MOVE makes the PACS open its own association to the destination AE title it has configured (host and
port from its modality list), so the local SCP listens on the port the PACS knows for ``local_ae``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_bytes

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
VERIFICATION = "1.2.840.10008.1.1"


@dataclass(frozen=True)
class Peer:
    """A remote application entity: ``AE@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@contextlib.contextmanager
def _quiet():
    """pynetdicom logs every refused association at ERROR; we report one line instead."""
    log = logging.getLogger("pynetdicom")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _associate(ae, peer: Peer, what: str):
    import socket

    try:  # a plain connection first, so "nobody listens" and "refused us" read differently
        socket.create_connection((peer.host, peer.port), timeout=10).close()
    except OSError as exc:
        raise EchoAVCError(f"cannot reach the PACS for {what} ({exc.strerror or type(exc).__name__})",
                           str(peer)) from None
    for _ in range(3):
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise EchoAVCError(f"association rejected by the PACS for {what} (check the called AE title "
                               f"{peer.ae_title!r} and that our AE title {ae.ae_title!r} is in its modality list)",
                               str(peer))
        # a peer that rejects and closes at once can look like an abort: ask again before calling it one
    raise EchoAVCError(f"the PACS aborted the association for {what} (is our AE title {ae.ae_title!r} allowed "
                       f"to {what}?)", str(peer))


def _status(ds: Dataset | None) -> int:
    return int(getattr(ds, "Status", 0xFFFF)) if ds is not None else 0xFFFF


def find_series(peer: Peer, study_uid: str, ae_title: str = "ECHOAVC", timeout: float = 30) -> list[Dataset]:
    """C-FIND at SERIES level: the study's series with their description, modality and manufacturer."""
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study_uid
    for kw in ("SeriesInstanceUID", "SeriesDescription", "Modality", "Manufacturer", "SeriesNumber",
               "NumberOfSeriesRelatedInstances"):
        setattr(q, kw, "")
    return find(peer, q, ae_title, timeout)


def find_studies(peer: Peer, query: dict, ae_title: str = "ECHOAVC", timeout: float = 30) -> list[str]:
    """C-FIND at STUDY level: the Study Instance UIDs matching ``query`` (PatientID, StudyDate range ...)."""
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    for kw, value in query.items():
        setattr(q, kw, value)
    return sorted(str(d.StudyInstanceUID) for d in find(peer, q, ae_title, timeout) if d.get("StudyInstanceUID"))


def find(peer: Peer, q: Dataset, ae_title: str = "ECHOAVC", timeout: float = 30) -> list[Dataset]:
    """One C-FIND (study root) with query ``q``; the matches."""
    from pynetdicom import AE

    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(STUDY_ROOT_FIND)
    out = []
    with _quiet():
        assoc = _associate(ae, peer, "C-FIND")
        try:
            for status, ident in assoc.send_c_find(q, STUDY_ROOT_FIND):
                s = _status(status)
                if s in (0xFF00, 0xFF01) and ident is not None:
                    out.append(ident)
                elif s == 0xFFFF:
                    raise EchoAVCError(f"the PACS ended the association during C-FIND (is our AE title "
                                       f"{ae_title!r} allowed to query?)", str(peer))
                elif s != 0x0000:
                    raise EchoAVCError(f"C-FIND failed with status 0x{s:04X}", str(peer))
        finally:
            assoc.release()
    return out


class StorageSCP:
    """A Storage SCP on ``port`` that writes every instance it receives into ``folder`` (named by content hash).

    Use as a context manager; ``received`` lists the files written.
    """

    def __init__(self, folder: str | Path, ae_title: str = "ECHOAVC", port: int = 11113, host: str = "127.0.0.1"):
        self.folder = Path(folder)
        self.ae_title, self.port, self.host = ae_title, port, host
        self.received: list[Path] = []
        self._lock = threading.Lock()
        self._server = None

    def _on_store(self, event) -> int:
        """EVT_C_STORE handler (``event``: a pynetdicom Event); the status goes back to the sender."""
        data = event.encoded_dataset()
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:24]}.dcm"
        try:
            atomic_write_bytes(path, data)
        except OSError:
            return 0xA700  # out of resources: the PACS reports the sub-operation as failed
        with self._lock:
            self.received.append(path)
        return 0x0000

    def __enter__(self) -> "StorageSCP":
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        self.folder.mkdir(parents=True, exist_ok=True)
        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        with _quiet():
            try:
                self._server = ae.start_server((self.host, self.port), block=False,
                                               evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
            except OSError as exc:
                raise EchoAVCError(f"cannot listen on {self.host}:{self.port} for C-MOVE ({exc.strerror})") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()


def move_series(peer: Peer, study_uid: str, series_uids: list[str], scp: StorageSCP, timeout: float = 120) -> None:
    """C-MOVE each series to ``scp``'s AE title (which the PACS must know, with its host and port)."""
    from pynetdicom import AE

    ae = AE(ae_title=scp.ae_title)
    ae.acse_timeout = ae.network_timeout = 30
    ae.dimse_timeout = timeout
    ae.add_requested_context(STUDY_ROOT_MOVE)
    with _quiet():
        assoc = _associate(ae, peer, "C-MOVE")
        try:
            for uid in series_uids:
                q = Dataset()
                q.QueryRetrieveLevel = "SERIES"
                q.StudyInstanceUID = study_uid
                q.SeriesInstanceUID = uid
                final = None
                for status, _ in assoc.send_c_move(q, scp.ae_title, STUDY_ROOT_MOVE):
                    if status is not None and "Status" in status:
                        final = status
                s = _status(final)
                if s == 0xA801:
                    raise EchoAVCError(f"the PACS does not know the move destination {scp.ae_title!r}: add it to "
                                       f"its modality list as {scp.host}:{scp.port}", str(peer))
                if s == 0xFFFF:
                    raise EchoAVCError(f"the PACS ended the association during C-MOVE (is our AE title "
                                       f"{scp.ae_title!r} allowed to retrieve?)", str(peer))
                if s not in (0x0000, 0xB000):
                    raise EchoAVCError(f"C-MOVE failed with status 0x{s:04X}", str(peer))
        finally:
            assoc.release()


def store(peer: Peer, datasets: list[Dataset], ae_title: str = "ECHOAVC", timeout: float = 60) -> None:
    """C-STORE ``datasets`` (the results) to ``peer``; raises EchoAVCError on any refused instance."""
    from pynetdicom import AE
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(uid, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    with _quiet():
        assoc = _associate(ae, peer, "C-STORE")
        try:
            for ds in datasets:
                s = _status(assoc.send_c_store(ds))
                if s not in (0x0000, 0xB000, 0xB007, 0xB006):
                    raise EchoAVCError(f"C-STORE of a result refused with status 0x{s:04X}", str(peer))
        finally:
            assoc.release()


__all__ = ["Peer", "StorageSCP", "find", "find_series", "find_studies", "move_series", "store"]
