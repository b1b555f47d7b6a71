"""Kill -9 at each named fault point, start again: nothing acknowledged is lost, every study is screened, and
the destination holds each study's SR and SC once. A real ``echoavc listen`` subprocess each time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pydicom
import pytest

from listen_kit import Destination, echo, free_port, send
from test_listen import by_study, wait_for

SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"


def start(args, fault, log, at: int = 1, ready: bool = True):
    env = {**os.environ, "ECHOAVC_FAULT": fault or "", "ECHOAVC_FAULT_AT": str(at)}
    proc = subprocess.Popen([sys.executable, "-c", "from echoavc.cli import main; main()", "listen", *args],
                            env=env, stdout=log, stderr=log)
    port = int(args[args.index("--port") + 1])
    deadline = time.monotonic() + 90
    while ready and echo(port) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"echoavc listen did not start (rc {proc.poll()})")
        time.sleep(0.3)
    return proc


def killed(proc, timeout=90) -> None:
    assert proc.wait(timeout) == -signal.SIGKILL


def status(queue) -> dict:
    from echoavc.listen import queue_status

    return queue_status(queue)


def status_cli(queue) -> dict:
    out = subprocess.run([sys.executable, "-c", "from echoavc.cli import main; main()", "listen", "--status",
                          str(queue)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_kill_at_every_fault_point_then_restart(screening_bundle, tmp_path, key_path):
    studies = by_study(screening_bundle.test_sources)
    uids = sorted(studies)
    data = {u: [pydicom.dcmread(f) for f in fs] for u, fs in studies.items()}
    queue = tmp_path / "queue"
    with Destination() as dest, open(tmp_path / "listen.log", "w") as log:
        port = free_port()
        args = ["--model", str(screening_bundle.bundle), "--out", str(tmp_path / "out"), "--queue", str(queue),
                "--key", str(key_path), "--port", str(port), "--forward", dest.address]
        total = sum(len(v) for v in data.values())
        # 1. killed after the last instance is on disk, before its response: that sender sees no success
        proc = start(args + ["--quiet", "60"], "after_receive", log, at=total)
        statuses = []
        for u in uids:
            try:
                statuses += send(port, data[u]) or []
            except Exception:  # the association dies with the process
                pass
        assert statuses.count(0) == total - 1
        killed(proc)
        st = status_cli(queue)  # echoavc listen --status
        assert st["instances_queued"] == total and st["studies_pending"] == len(uids)  # the last one too
        # 2. killed when the first (quiet) study is taken for screening
        killed(start(args + ["--quiet", "1"], "after_queue", log, ready=False))
        assert status(queue)["studies_pending"] == len(uids)
        # 3. killed after screening, before the results and the screened mark are written
        killed(start(args + ["--quiet", "1"], "during_screening", log, ready=False))
        assert status(queue)["studies_pending"] == len(uids)
        # 4. killed after the screened mark, before forwarding: a pending forward on disk
        killed(start(args + ["--quiet", "1"], "before_forward", log, ready=False))
        st = status(queue)
        assert st["forwards_pending"] == 1 and st["studies_pending"] == len(uids) - 1
        assert not dest.received
        # 5. a clean start: the pending forward is sent, the other studies screened and forwarded
        proc = start(args + ["--quiet", "1"], None, log)
        try:
            wait_for(lambda: status(queue)["instances_queued"] == 0 and status(queue)["forwards_pending"] == 0
                     and len(dest.datasets) == 2 * len(uids), 120, "every study screened and forwarded")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    assert sorted(dest.studies()) == uids
    assert all(v == sorted([SR_CLASS, SC_CLASS]) for v in dest.studies().values())
    assert set(dest.received.values()) == {1}  # each result stored exactly once
    assert len(list((tmp_path / "out").iterdir())) == len(uids)
    events = [json.loads(line)["event"] for line in (queue / "listen.jsonl").read_text().splitlines()]
    assert events.count("forwarded") == len(uids) and "listening" in events
