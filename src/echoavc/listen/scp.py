"""The listener's DICOM service: C-ECHO and C-STORE of ultrasound images (pynetdicom).

Only the ultrasound storage SOP classes are accepted (others are refused in the association's presentation
contexts), in the uncompressed transfer syntaxes and the compressed ones echo machines send. With ``allow``
an association is accepted only from a listed (calling AE title, source address) pair: an AE title alone is
easy to spoof. The response to a C-STORE goes back only after the instance is durably in the queue.
"""

from __future__ import annotations

import ipaddress
import logging
import threading

from echoavc.dicom.deid import PseudonymKey
from echoavc.errors import EchoAVCError
from echoavc.listen.queue import ListenQueue, fault

VERIFICATION = "1.2.840.10008.1.1"
#: US Image Storage, US Multi-frame Image Storage, and their retired forms old scanners still send
ULTRASOUND_STORAGE = ("1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",
                      "1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3")
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",     # Explicit VR Little Endian
    "1.2.840.10008.1.2",       # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",     # Explicit VR Big Endian (retired, still sent)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",     # RLE Lossless
)
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
SUCCESS = 0x0000


def parse_allow(entries) -> list[tuple[str, object]]:
    """``AE@ADDRESS`` entries (ADDRESS an IP address or a network such as 10.1.2.0/24) as (AE, network)."""
    out = []
    for entry in entries or []:
        ae, sep, addr = str(entry).rpartition("@")
        try:
            net = ipaddress.ip_network(addr.strip(), strict=False)
        except ValueError:
            net = None
        if not sep or not ae.strip() or len(ae.strip()) > 16 or net is None:
            raise EchoAVCError(f"--allow takes AE@ADDRESS (calling AE title and IP address or network), not {entry!r}")
        out.append((ae.strip(), net))
    return out


def allowed(rules, ae_title: str, address: str) -> bool:
    if not rules:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ae == ae_title.strip() and ip in net for ae, net in rules)


def tls_context(cert, key, ca=None):
    """The server's TLS context (TLS 1.2 or later): its certificate chain and key; with ``ca``, a caller must
    present a certificate signed by it (mutual TLS)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
        if ca:
            ctx.load_verify_locations(cafile=str(ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise EchoAVCError(f"cannot use the TLS certificate or key ({getattr(exc, 'strerror', None) or exc})",
                           cert) from None
    return ctx


def _make_ae(ae_title: str, rules):
    from pynetdicom import AE

    class _PairCheckingAE(AE):
        """pynetdicom checks ``require_calling_aet`` while negotiating, in the association's own thread: the
        titles allowed are those listed with the requestor's address, so a listed title from another address
        is rejected (calling AE title not recognised) before any data is exchanged."""

        @property
        def require_calling_aet(self):
            if not rules:
                return []
            assoc = threading.current_thread()
            address = getattr(getattr(assoc, "requestor", None), "address", "")
            titles = [ae for ae, net in rules if allowed([(ae, net)], ae, address)]
            return titles or ["\\"]  # a title nobody can send: reject

        @require_calling_aet.setter
        def require_calling_aet(self, value):
            pass

    return _PairCheckingAE(ae_title=ae_title)


class StoreService:
    """The running C-STORE SCP; ``stop()`` ends it. ``received`` counts instances acknowledged."""

    def __init__(self, queue: ListenQueue, key: PseudonymKey, *, ae_title: str = "ECHOAVC", host: str = "127.0.0.1",
                 port: int = 11112, allow=None, max_associations: int = 16, tls=None):
        self.queue, self.key = queue, key
        self.tls = tls_context(*tls) if tls else None
        self.rules = parse_allow(allow)
        self.ae_title, self.host, self.port = ae_title, host, port
        self.max_associations = max_associations
        self.received = 0
        self.last_received = 0.0
        self._count = threading.Lock()
        self._server = None

    def _caller(self, event) -> str:
        r = event.assoc.requestor
        return f"{r.ae_title.strip()}@{r.address}"

    def on_store(self, event) -> int:
        """EVT_C_STORE: queue the instance durably, then answer. Any failure answers with a failure status."""
        import time

        try:
            ds = event.dataset
            study_uid, sop_uid = str(ds.get("StudyInstanceUID", "")), str(event.request.AffectedSOPInstanceUID)
        except Exception as exc:  # an undecodable data set: refuse it, say so once
            self.queue.log("refused", "error", caller=self._caller(event),
                           reason=f"unreadable data set ({type(exc).__name__})")
            return CANNOT_UNDERSTAND
        if not study_uid:
            self.queue.log("refused", "error", caller=self._caller(event), reason="no Study Instance UID")
            return CANNOT_UNDERSTAND
        study, instance = self.key.pseudonym("study", study_uid), self.key.pseudonym("instance", sop_uid)
        try:
            self.queue.store(study, instance, event.encoded_dataset())
        except OSError as exc:
            self.queue.log("store_failed", "error", study=study, instance=instance,
                           reason=exc.strerror or type(exc).__name__)
            return OUT_OF_RESOURCES
        fault("after_receive")
        with self._count:
            self.received += 1
            self.last_received = time.time()
            # the key holder's way back from a pseudonym in the log to the study (the map beside the key)
            self.key.remember([("study", study_uid, study)])
        self.queue.log("received", study=study, instance=instance, caller=self._caller(event))
        return SUCCESS

    def on_rejected(self, event) -> None:
        self.queue.log("association_refused", "error", caller=self._caller(event),
                       reason="calling AE title and address not in --allow")

    def on_aborted(self, event) -> None:
        self.queue.log("association_aborted", "warning", caller=self._caller(event))

    def start(self) -> "StoreService":
        from pynetdicom import evt

        ae = _make_ae(self.ae_title, self.rules)
        ae.maximum_associations = self.max_associations
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 60
        for uid in ULTRASOUND_STORAGE:
            ae.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(VERIFICATION)
        handlers = [(evt.EVT_C_STORE, self.on_store), (evt.EVT_REJECTED, self.on_rejected),
                    (evt.EVT_ABORTED, self.on_aborted)]
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # our own JSON lines say what happened
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers,
                                           ssl_context=self.tls)
        except OSError as exc:
            raise EchoAVCError(f"cannot listen on {self.host}:{self.port} ({exc.strerror})") from None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


__all__ = ["StoreService", "parse_allow", "allowed", "tls_context", "ULTRASOUND_STORAGE", "TRANSFER_SYNTAXES"]
