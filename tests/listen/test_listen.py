"""The listener end to end in one process: studies sent by C-STORE are screened once quiet, their SR + SC
forwarded to a destination SCP, identified data deleted; a truncated instance costs one log line; a late
instance re-opens its study and the results are replaced (same UIDs), not duplicated."""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import replace

import pydicom
import pytest

from echoavc.listen import Listener, queue_status
from echoavc.settings import ListenSettings

from listen_kit import Destination, free_port, send, storescu

SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"


def by_study(files) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in files:
        out.setdefault(str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID), []).append(f)
    return out


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def truncated(path):
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = ds.PixelData[: (len(ds.PixelData) // 3) & ~1]  # a third of the frames' bytes
    return ds


def test_listener_screens_forwards_and_replaces(screening_bundle, tmp_path, key_path):
    if shutil.which("storescu") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dcmtk's storescu is missing (apt-get install dcmtk; .ci/run does)")
        pytest.skip("dcmtk not installed")
    studies = by_study(screening_bundle.test_sources)
    assert len(studies) >= 2
    settings = replace(ListenSettings(), port=free_port(), quiet_s=1.0, poll_s=0.2)
    with Destination() as dest:
        node = Listener(screening_bundle.bundle, tmp_path / "out", tmp_path / "queue", key_path,
                        forward=dest.address, settings=settings, screening=screening_bundle.settings,
                        echo_log=False).start()
        loop = threading.Thread(target=node.run, daemon=True)
        loop.start()
        try:
            uids = sorted(studies)
            first = [pydicom.dcmread(f) for f in studies[uids[0]]]
            sent = send(settings.port, first + [truncated(studies[uids[0]][0])])
            assert sent == [0] * (len(first) + 1)
            # the other studies from dcmtk's storescu, an independent peer: two senders in parallel
            rest = [str(f) for uid in uids[1:] for f in studies[uid]]
            with ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(lambda k: storescu(f"SENDER{k}", settings.port, rest[k::2]), range(2)))
            assert all(rc == 0 for r in runs for rc, _ in r), runs
            wait_for(lambda: set(dest.studies()) == set(uids) and all(len(v) == 2 for v in dest.studies().values())
                     and queue_status(node.queue.root)["instances_queued"] == 0, 120, "every study forwarded")
            assert all(v == sorted([SR_CLASS, SC_CLASS]) for v in dest.studies().values())
            assert node.counters.screened == len(uids)
            st = queue_status(node.queue.root)
            assert st["studies_pending"] == 0 and st["forwards_pending"] == 0
            # the truncated instance: one error line, its study screened from the others
            (err,) = [e for e in st["last_errors"] if e["event"] == "instance_not_screened"]
            assert err["instance"].startswith("I-") and err["reason"]
            results = sorted(p.name for p in (tmp_path / "out").iterdir())
            assert len(results) == len(uids) and all(r.startswith("E-") for r in results)
            for r in results:
                # exam ids are the keyed study pseudonyms (the folder's name), not an unkeyed hash
                exams = (tmp_path / "out" / r / "exams.csv").read_text().splitlines()[1:]
                assert exams and {e.split(",")[0] for e in exams} == {r}
            # a late instance (sent again) re-opens its study: screened again, results replaced
            again = pydicom.dcmread(studies[uids[1]][0])
            assert send(settings.port, [again]) == [0]
            wait_for(lambda: node.counters.screened == len(uids) + 1 and node.counters.forwarded == len(uids) + 1,
                     60, "the re-opened study forwarded")
            assert len(dest.datasets) == 2 * len(uids)  # the same SOP Instance UIDs: replaced, not added
            assert sorted(dest.received.values()) == [1] * (2 * len(uids) - 2) + [2, 2]
        finally:
            node.stop()
            loop.join(30)
    # nothing identified in the results or the log
    ds = pydicom.dcmread(studies[uids[0]][0], stop_before_pixels=True)
    secrets = [str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)]
    texts = [p.read_text(errors="ignore") for p in (tmp_path / "out").rglob("*")
             if p.suffix in (".csv", ".json", ".html")] + [(tmp_path / "queue" / "listen.jsonl").read_text()]
    assert texts and not [s for s in secrets for t in texts if s in t]


def test_forward_retries_with_backoff_until_the_destination_answers(screening_bundle, tmp_path, key_path):
    from listen_kit import tiny_us

    dest = Destination()  # its port chosen, nobody listening yet
    settings = replace(ListenSettings(), port=free_port(), backoff_s=0.5, backoff_max_s=1.0)
    node = Listener(screening_bundle.bundle, tmp_path / "out", tmp_path / "queue", key_path, forward=dest.address,
                    settings=settings, echo_log=False)
    result = tiny_us()  # stands in for an SR waiting in the outbox
    node.queue.outbox_of("E-TEST").mkdir()
    result.save_as(node.queue.outbox_of("E-TEST") / "sr.dcm", enforce_file_format=True)
    node.step()
    st = queue_status(node.queue.root)
    (err,) = st["last_errors"]
    assert err["event"] == "forward_failed" and err["retry_in_s"] == 0.5 and st["forwards_pending"] == 1
    node.step()  # within the back-off: not tried again
    assert len(queue_status(node.queue.root)["last_errors"]) == 1
    time.sleep(0.6)
    node.step()  # tried again, fails again: the wait doubles (up to the maximum)
    assert [e["retry_in_s"] for e in queue_status(node.queue.root)["last_errors"]] == [0.5, 1.0]
    with dest:
        time.sleep(1.1)
        node.step()
        assert dict(dest.received) == {str(result.SOPInstanceUID): 1}
    assert queue_status(node.queue.root)["forwards_pending"] == 0 and node.counters.forwarded == 1


@pytest.mark.parametrize("inside", ["out", "queue"])
def test_key_inside_results_or_queue_is_refused_before_it_is_made(screening_bundle, tmp_path, inside):
    """The key re-identifies every exam: refused in the shared results and in the prunable queue, and the
    refusal leaves no key file behind."""
    from echoavc.errors import EchoAVCError

    key = tmp_path / inside / "echoavc.key"
    with pytest.raises(EchoAVCError, match="key must live outside"):
        Listener(screening_bundle, tmp_path / "out", tmp_path / "queue", key)
    assert not key.exists()
