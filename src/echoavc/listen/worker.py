"""The listener's loop: receive (scp.py) while screening quiet studies, forwarding results, purging.

Order of the steps of one study, each safe to redo after a kill at any point:
screen the pending instances with ``echoavc.predict`` into ``OUT/<study pseudonym>/`` -> SR + SC into the
outbox (``echoavc.dicom.results``, deterministic UIDs) -> ``screened.json`` -> C-STORE to ``--forward``
(retried with back-off; the outbox is the list of pending forwards) -> identified instances deleted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from echoavc.dicom.deid import PseudonymKey, check_key_outside
from echoavc.errors import EchoAVCError
from echoavc.listen.queue import ListenQueue, fault
from echoavc.listen.scp import StoreService
from echoavc.pacs.dimse import Peer
from echoavc.settings import ListenSettings


def parse_forward(text: str | None) -> Peer | None:
    """``AE@HOST:PORT`` -> Peer; None for None."""
    if not text:
        return None
    ae, sep, rest = str(text).rpartition("@")
    host, colon, port = rest.rpartition(":")
    if not sep or not ae or len(ae) > 16 or not colon or not host or not port.isdigit():
        raise EchoAVCError(f"--forward takes AE@HOST:PORT, not {text!r}")
    return Peer(ae, host, int(port))


@dataclass
class Counters:
    screened: int = 0
    forwarded: int = 0
    screen_seconds: float = 0.0
    errors: list = field(default_factory=list)


class Listener:
    """The whole node: ``start()`` the SCP, then ``run()`` (or ``step()`` repeatedly) until ``stop()``."""

    def __init__(self, model: str | Path, out: str | Path, queue: str | Path, key: str | Path, *,
                 forward: str | None = None, allow=None, settings: ListenSettings = ListenSettings(),
                 screening=None, backend: str = "auto", echo_log: bool = True, tls=None):
        from echoavc.bundle import load_bundle

        self.settings = settings
        self.out = Path(out)
        self.queue = ListenQueue(queue, echo=echo_log)
        from echoavc.dicom.results import check_apart

        check_apart(self.out, self.queue.root)  # identified queue and de-identified results stay apart
        check_key_outside(key, self.out, "results folder")
        check_key_outside(key, self.queue.root, "queue folder")  # the queue is pruned; the key must outlive it
        self.key = PseudonymKey(key)
        self.model = Path(model)
        self.bundle = load_bundle(model)  # a broken bundle fails before the port opens
        self.screening, self.backend = screening, backend
        self.peer = parse_forward(forward)
        self.scp = StoreService(self.queue, self.key, ae_title=settings.ae_title, host=settings.host,
                                port=settings.port, allow=allow, tls=tls)
        self.counters = Counters()
        self._retry: dict[str, tuple[float, float]] = {}  # study -> (next attempt time, current wait)
        self._stop = threading.Event()

    # -- one study ------------------------------------------------------------------------------------------
    def screen(self, study: str) -> None:
        from echoavc.dicom.results import exam_results_to_dicom
        from echoavc.predict import predict

        fault("after_queue")
        t0 = time.perf_counter()
        files = self.queue.files(study)  # the new instances and those still retained from earlier screenings
        folder = self.queue.studies / study
        report = predict([folder / n for n in sorted(files)], self.model, self.out / study, settings=self.screening,
                         backend=self.backend, overlays=self.settings.overlays, progress=False, key=self.key.path)
        for f in report.failures:
            self.queue.log("instance_not_screened", "error", study=study, instance=Path(f["source"]).stem,
                           reason=f["reason"].replace(str(folder), study))
        fault("during_screening")
        if self.peer is not None and report.exams:
            outbox = self.queue.outbox_of(study)
            exam_results_to_dicom(report, self.bundle, outbox, on_failure=lambda e, reason: self.queue.log(
                "results_not_written", "error", study=study, reason=reason))
        self.queue.mark_screened(study, files)
        seconds = time.perf_counter() - t0
        self.counters.screened += 1
        self.counters.screen_seconds += seconds
        decisions = [e.get("decision") for e in report.exams]
        self.queue.log("screened", study=study, instances=len(files), failed=len(report.failures),
                       decisions=decisions, seconds=round(seconds, 2), results=str(self.out / study))
        fault("before_forward")
        if self.peer is not None:
            self.forward(study)

    def forward(self, study: str) -> bool:
        """C-STORE the study's SR + SC from the outbox; on failure, schedule the next try (doubling wait)."""
        import pydicom

        from echoavc.pacs.dimse import store

        when, wait = self._retry.get(study, (0.0, 0.0))
        if time.time() < when:
            return False
        paths = sorted(self.queue.outbox_of(study).rglob("*.dcm"))
        try:
            if paths:
                store(self.peer, [pydicom.dcmread(p) for p in paths], self.settings.ae_title, timeout=30)
        except EchoAVCError as exc:
            wait = min(self.settings.backoff_max_s, max(self.settings.backoff_s, 2 * wait))
            self._retry[study] = (time.time() + wait, wait)
            self.queue.log("forward_failed", "error", study=study, destination=str(self.peer), reason=exc.reason,
                           retry_in_s=wait)
            return False
        self.queue.forwarded(study)
        self._retry.pop(study, None)
        self.counters.forwarded += 1
        self.queue.log("forwarded", study=study, destination=str(self.peer), objects=len(paths))
        return True

    # -- the loop -------------------------------------------------------------------------------------------
    def step(self) -> None:
        """One pass: pending forwards, quiet studies, retention."""
        if self.peer is not None:
            for study in self.queue.pending_forwards():
                self.forward(study)
        for study in self.queue.quiet_studies(self.settings.quiet_s):
            try:
                self.screen(study)
            except EchoAVCError as exc:  # e.g. every instance unreadable: say so, keep the others going
                self.queue.log("study_not_screened", "error", study=study, reason=exc.reason)
                self.queue.mark_screened(study, self.queue.files(study))
        for study in self.queue.purge(self.settings.retain_s):
            self.queue.log("purged", study=study)

    def start(self) -> "Listener":
        self.scp.start()
        s = self.settings
        self.queue.log("listening", ae_title=s.ae_title, address=f"{s.host}:{s.port}",
                       forward=str(self.peer) if self.peer else None, allow=len(self.scp.rules) or "anyone",
                       quiet_s=s.quiet_s, retain_s=s.retain_s, tls=self.scp.tls is not None)
        return self

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(self.settings.poll_s)
        finally:
            self.scp.stop()

    def stop(self) -> None:
        self._stop.set()


__all__ = ["Listener", "ListenSettings", "parse_forward"]
