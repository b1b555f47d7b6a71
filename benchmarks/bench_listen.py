"""``echoavc listen`` under load (issue 21): 4 dcmtk ``storescu`` senders in parallel push ~200 instances of
several small synthetic studies to a real ``echoavc listen`` subprocess on localhost, which screens each study
once it is quiet and forwards its SR + SC to a Storage SCP in this process.

Checks (PASS/FAIL): every instance acknowledged and queued, every study screened, every result forwarded,
the queue empty of identified data at the end. Figures: instances/s received (first send to last
acknowledgement, 4 senders) and studies/s screened (studies / summed screening seconds from the listener's
log, and end to end after the last instance, which includes the quiet period).

  .venv/bin/python benchmarks/bench_listen.py --model BUNDLE [--studies 8 --per-study 25 --senders 4]

The studies are copies of ``echoavc synth`` files (a 3-patient cohort made once in --work) under new study,
series and instance UIDs: mixed transfer syntaxes (JPEG baseline, RLE, explicit and implicit little endian).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

# the dcmtk sender and the free port are the listener tests' own (not part of the package: echoavc sends with
# pynetdicom; storescu is an independent peer that only tests and this benchmark drive)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "listen"))
from listen_kit import free_port, storescu  # noqa: E402


def make_inputs(work: Path, studies: int, per_study: int) -> list[Path]:
    from echoavc.synth.cohort import make_cohort

    cohort = work / "cohort"
    if not (cohort / "dicom").is_dir():
        make_cohort(cohort, 3, seed=11, frames_per_exam=2, exams_per_patient=1, workers=1, progress=False)
    sources = sorted((cohort / "dicom").rglob("*.dcm"))
    inputs = work / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    files = []
    for s in range(studies):
        study_uid, series_uid = generate_uid(), generate_uid()
        for i in range(per_study):
            ds = pydicom.dcmread(sources[(s + i) % len(sources)])
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.PatientID, ds.InstanceNumber = f"BENCH{s:03d}", i + 1
            path = inputs / f"s{s:03d}" / f"i{i:03d}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
    return files


def wait_echo(port: int, proc, timeout: float = 120) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="BENCH")
    ae.add_requested_context("1.2.840.10008.1.1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"echoavc listen exited with {proc.returncode}")
        assoc = ae.associate("127.0.0.1", port, ae_title="ECHOAVC")
        if assoc.is_established:
            assoc.release()
            return
        time.sleep(0.3)
    raise SystemExit("echoavc listen did not answer C-ECHO")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-listen"))
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--per-study", type=int, default=25)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--quiet", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()
    from echoavc.pacs.dimse import StorageSCP

    if shutil.which("storescu") is None:
        print("FAIL: dcmtk's storescu is not installed")
        return 1
    a.work.mkdir(parents=True, exist_ok=True)
    files = make_inputs(a.work, a.studies, a.per_study)
    for d in ("out", "queue", "dest", "keys"):
        shutil.rmtree(a.work / d, ignore_errors=True)
    port = free_port()
    with StorageSCP(a.work / "dest", "DEST", free_port()) as dest:
        cmd = [sys.executable, "-c", "from echoavc.cli import main; main()", "listen", "--model", str(a.model),
               "--out", str(a.work / "out"), "--queue", str(a.work / "queue"), "--key", str(a.work / "keys" / "k"),
               "--port", str(port), "--quiet", str(a.quiet), "--forward", f"DEST@127.0.0.1:{dest.port}",
               "--overlays", "driving"]
        with open(a.work / "listen.stderr", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log)
            try:
                wait_echo(port, proc)
                t0 = time.perf_counter()
                runs = [[] for _ in range(a.senders)]
                with ThreadPoolExecutor(a.senders) as pool:
                    list(pool.map(lambda k: runs[k].extend(storescu(f"SENDER{k}", port, files[k::a.senders], timeout=600)),
                                  range(a.senders)))
                t_sent = time.perf_counter()
                deadline = time.monotonic() + a.timeout
                while len(dest.received) < 2 * a.studies or any((a.work / "queue" / "studies").rglob("*.dcm")):
                    if time.monotonic() > deadline or proc.poll() is not None or any(rc for r in runs for rc, _ in r):
                        break
                    time.sleep(0.2)
                t_done = time.perf_counter()
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    events = [json.loads(line) for line in (a.work / "queue" / "listen.jsonl").read_text().splitlines()]
    received = {(e["study"], e["instance"]) for e in events if e["event"] == "received"}
    screened = [e for e in events if e["event"] == "screened"]
    forwarded = {e["study"] for e in events if e["event"] == "forwarded"}
    left = list((a.work / "queue" / "studies").rglob("*.dcm"))
    seconds = sum(e["seconds"] for e in screened)
    figures = {
        "instances": len(files), "senders": a.senders, "studies": a.studies,
        "instances_acknowledged": len(received), "storescu_rc": [rc for r in runs for rc, _ in r],
        "studies_screened": len({e["study"] for e in screened}), "screenings": len(screened),
        "studies_forwarded": len(forwarded), "results_at_destination": len({p.name for p in dest.received}),
        "identified_instances_left": len(left),
        "receive_s": round(t_sent - t0, 2), "instances_per_s_received": round(len(files) / (t_sent - t0), 1),
        "screening_s": round(seconds, 2), "studies_per_s_screened": round(len(screened) / seconds, 3) if seconds else 0,
        "after_last_instance_s": round(t_done - t_sent, 2), "quiet_s": a.quiet,
        "studies_per_s_end_to_end": round(a.studies / (t_done - t0), 3),
    }
    ok = (len(received) == len(files) and all(rc == 0 for rc in figures["storescu_rc"])
          and figures["studies_screened"] == a.studies and len(forwarded) == a.studies
          and figures["results_at_destination"] == 2 * a.studies and not left)
    print(json.dumps(figures, indent=1))
    if not ok:
        for k, r in enumerate(runs):
            for rc, out in r:
                if rc:
                    print(f"storescu SENDER{k}: {out}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
