"""Helpers of the listener tests: free ports, tiny ultrasound data sets, a sender and a destination SCP."""

from __future__ import annotations

import socket
import threading
from collections import Counter

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_us(study_uid: str | None = None, sop_class: str = US_MULTIFRAME, patient: str = "PAT-SECRET-1") -> Dataset:
    """A small (model-free) ultrasound instance: enough for the network and the queue, not for screening."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient, "Doe^Secret", "US"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.NumberOfFrames = 7, 0, 1
    ds.PixelData = np.zeros((8, 8), np.uint8).tobytes()
    return ds


def send(port: int, datasets, calling: str = "SCANNER", called: str = "ECHOAVC", abort_after: int | None = None):
    """C-STORE ``datasets`` to 127.0.0.1:port; the status of each (None where none came back). With
    ``abort_after`` the association is aborted after that many instances (a sender that drops)."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
        own = sorted({str(ds.file_meta.TransferSyntaxUID) for ds in datasets if str(ds.SOPClassUID) == uid})
        for ts in dict.fromkeys(own + [ExplicitVRLittleEndian]):  # one context per syntax, as storescu does
            ae.add_requested_context(uid, ts)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return None
    out = []
    try:
        for i, ds in enumerate(datasets):
            if abort_after is not None and i == abort_after:
                assoc.abort()
                return out
            rsp = assoc.send_c_store(ds)
            out.append(int(rsp.Status) if rsp is not None and "Status" in rsp else None)
    finally:
        if assoc.is_established:
            assoc.release()
    return out


def echo(port: int, calling: str = "SCANNER", tls=None) -> int | None:
    """C-ECHO; ``tls``: an ssl.SSLContext for DICOM over TLS."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="ECHOAVC", tls_args=(tls, "127.0.0.1") if tls else None)
    if not assoc.is_established:
        return None
    try:
        rsp = assoc.send_c_echo()
        return int(rsp.Status) if rsp is not None and "Status" in rsp else None
    finally:
        assoc.release()


class Destination:
    """A Storage SCP standing in for the PACS results go to: counts every SOP Instance UID it receives."""

    def __init__(self, ae_title: str = "DEST"):
        self.ae_title, self.port = ae_title, free_port()
        self.received: Counter = Counter()
        self.datasets: dict[str, Dataset] = {}
        self._lock = threading.Lock()
        self._server = None

    def _on_store(self, event) -> int:
        ds = event.dataset
        with self._lock:
            self.received[str(ds.SOPInstanceUID)] += 1
            self.datasets[str(ds.SOPInstanceUID)] = ds
        return 0

    def __enter__(self) -> "Destination":
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()

    @property
    def address(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def studies(self) -> dict[str, list[str]]:
        """{Study Instance UID: sorted SOP Class UIDs of the distinct instances received}."""
        out: dict[str, list[str]] = {}
        for ds in self.datasets.values():
            out.setdefault(str(ds.StudyInstanceUID), []).append(str(ds.SOPClassUID))
        return {k: sorted(v) for k, v in out.items()}


def read(path) -> Dataset:
    return pydicom.dcmread(path)


#: dcmtk's storescu proposes one compressed transfer syntax per run (plus the uncompressed ones): its option for each
STORESCU_OPTION = {"1.2.840.10008.1.2.4.50": ["-xy"], "1.2.840.10008.1.2.5": ["-xr"],
                   "1.2.840.10008.1.2.4.70": ["-xs"], "1.2.840.10008.1.2.4.80": ["-xt"],
                   "1.2.840.10008.1.2.4.90": ["-xv"]}


def storescu(calling: str, port: int, files, timeout: float = 120) -> list[tuple[int, str]]:
    """One dcmtk sender (the listener tests and benchmarks/bench_listen.py): a storescu run per transfer syntax
    among ``files``, one after the other (one connection each, as a modality sending a study does), each given
    ``timeout`` seconds; (return code, output tail) of each run."""
    import subprocess

    groups: dict[str, list[str]] = {}
    for f in files:
        ts = str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(ts, []).append(str(f))
    out = []
    for ts, group in sorted(groups.items()):
        res = subprocess.run(["storescu", *STORESCU_OPTION.get(ts, []), "-aet", calling, "-aec", "ECHOAVC",
                              "127.0.0.1", str(port), *group], capture_output=True, text=True, timeout=timeout)
        out.append((res.returncode, (res.stdout + res.stderr)[-400:]))
    return out
