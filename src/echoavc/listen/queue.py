"""The listener's on-disk queue: what is acknowledged is on disk, and the files say what is left to do.

Layout under the queue folder (identified data: keep it private, apart from the results folder)::

    studies/<study pseudonym>/<instance pseudonym>.dcm   received instances (durable before the response)
    studies/<study pseudonym>/screened.json             {file name: mtime_ns} of the files last screened
    outbox/<study pseudonym>/**.dcm                      SR + SC waiting to be forwarded
    listen.jsonl                                         the structured log (pseudonyms only)

A study is pending while it holds a file that ``screened.json`` does not list with the same mtime: a late
instance re-opens it. Every step can be redone: screening again gives the same result UIDs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

MARKER = "screened.json"
LOG = "listen.jsonl"


_reached: dict[str, int] = {}
_reached_lock = threading.Lock()


def fault(point: str) -> None:
    """Kill this process (SIGKILL, no clean-up) the ``ECHOAVC_FAULT_AT``-th time (default the first) it reaches
    the point ``ECHOAVC_FAULT`` names: the restart tests' fault points after_receive, after_queue,
    during_screening, before_forward."""
    if os.environ.get("ECHOAVC_FAULT") != point:
        return
    with _reached_lock:
        _reached[point] = _reached.get(point, 0) + 1
        if _reached[point] >= int(os.environ.get("ECHOAVC_FAULT_AT") or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_write(path: Path, data: bytes) -> None:
    """Write, fsync, rename, fsync the folder: after this returns the file survives a crash or power loss."""
    if os.environ.get("ECHOAVC_FAULT") == "write_fail":
        raise OSError(28, "No space left on device (injected by ECHOAVC_FAULT=write_fail)")
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _fsync_dir(folder.parent)
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


class ListenQueue:
    """The queue folder. One lock orders receiving against purging a study's folder."""

    def __init__(self, root: str | Path, echo: bool = True):
        self.root = Path(root)
        self.studies = self.root / "studies"
        self.outbox = self.root / "outbox"
        for d in (self.studies, self.outbox):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.lock = threading.Lock()
        self.echo = echo
        self._log_lock = threading.Lock()
        for stale in self.root.rglob(".*.tmp"):  # a write a kill interrupted: never acknowledged
            stale.unlink(missing_ok=True)

    # -- the log --------------------------------------------------------------------------------------------
    def log(self, event: str, level: str = "info", **fields) -> None:
        """One JSON line to stderr and to listen.jsonl. Callers pass pseudonyms only."""
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level, "event": event, **fields}
        line = json.dumps(rec, default=str)
        with self._log_lock:
            with open(self.root / LOG, "a") as fh:
                fh.write(line + "\n")
            if self.echo:
                print(line, file=sys.stderr, flush=True)

    # -- receiving ------------------------------------------------------------------------------------------
    def store(self, study: str, instance: str, data: bytes) -> Path:
        path = self.studies / study / f"{instance}.dcm"
        with self.lock:
            durable_write(path, data)
        return path

    # -- study states ---------------------------------------------------------------------------------------
    def files(self, study: str) -> dict[str, int]:
        """{file name: mtime_ns} of the study's instances now."""
        out = {}
        for p in (self.studies / study).glob("*.dcm"):
            try:
                out[p.name] = p.stat().st_mtime_ns
            except FileNotFoundError:
                pass
        return out

    def screened(self, study: str) -> dict[str, int]:
        try:
            return json.loads((self.studies / study / MARKER).read_text())["files"]
        except (FileNotFoundError, ValueError, KeyError):
            return {}

    def pending(self, study: str) -> dict[str, int]:
        """The instances not screened yet (new, or received again since)."""
        done = self.screened(study)
        return {n: m for n, m in self.files(study).items() if done.get(n) != m}

    def quiet_studies(self, quiet_s: float) -> list[str]:
        """Studies with pending instances and none newer than ``quiet_s`` seconds, oldest first."""
        now = time.time_ns()
        ready = []
        for d in sorted(self.studies.iterdir()) if self.studies.is_dir() else []:
            pend = self.pending(d.name)
            if pend and now - max(pend.values()) >= quiet_s * 1e9:
                ready.append((max(pend.values()), d.name))
        return [s for _, s in sorted(ready)]

    def mark_screened(self, study: str, files: dict[str, int]) -> None:
        doc = {"files": files, "at": time.time()}
        durable_write(self.studies / study / MARKER, json.dumps(doc).encode())

    # -- forwarding -----------------------------------------------------------------------------------------
    def outbox_of(self, study: str) -> Path:
        return self.outbox / study

    def pending_forwards(self) -> list[str]:
        return sorted(d.name for d in self.outbox.iterdir() if d.is_dir() and any(d.rglob("*.dcm")))

    def forwarded(self, study: str) -> None:
        shutil.rmtree(self.outbox / study, ignore_errors=True)

    # -- retention ------------------------------------------------------------------------------------------
    def purge(self, retain_s: float) -> list[str]:
        """Delete the screened instances of studies whose results are out (no pending forward) and whose
        screening is older than ``retain_s``; a study folder with nothing left goes too. Returns the studies."""
        purged = []
        now = time.time()
        for d in sorted(self.studies.iterdir()):
            marker = d / MARKER
            if not marker.exists() or (self.outbox / d.name).exists():
                continue
            try:
                at = json.loads(marker.read_text()).get("at", 0)
            except ValueError:
                continue
            if now - at < retain_s:
                continue
            with self.lock:  # no instance lands in a folder being removed
                done = self.screened(d.name)
                left = False
                for name, mtime in self.files(d.name).items():
                    if done.get(name) == mtime:
                        (d / name).unlink(missing_ok=True)
                    else:
                        left = True
                if left:
                    continue
                shutil.rmtree(d, ignore_errors=True)
            purged.append(d.name)
        return purged


def queue_status(root: str | Path, errors: int = 5) -> dict:
    """What ``echoavc listen --status DIR`` prints: queue length, studies pending, pending forwards, last errors."""
    root = Path(root)
    if not (root / "studies").is_dir():
        from echoavc.errors import EchoAVCError

        raise EchoAVCError("not a listener queue folder (no studies/)", root)
    q = ListenQueue.__new__(ListenQueue)  # read only: no clean-up of temporaries, no folders made
    q.root, q.studies, q.outbox = root, root / "studies", root / "outbox"
    studies = [d.name for d in sorted(q.studies.iterdir()) if d.is_dir()]
    pending = {s: len(q.pending(s)) for s in studies}
    last = []
    if (root / LOG).exists():
        for line in (root / LOG).read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("level") == "error":
                last.append(rec)
    return {"queue": str(root), "instances_queued": sum(len(q.files(s)) for s in studies),
            "instances_pending": sum(pending.values()), "studies_pending": sum(1 for n in pending.values() if n),
            "studies_retained": sum(1 for n in pending.values() if not n),
            "forwards_pending": len(q.pending_forwards()) if q.outbox.is_dir() else 0,
            "last_errors": last[-errors:]}


__all__ = ["ListenQueue", "durable_write", "fault", "queue_status", "MARKER", "LOG"]
