"""The Ray engine (``--engine ray``, echoavc.runner_ray): the same outputs as the local engine, workers that die
are replaced and their files tried again (a bounded number of times), and a killed driver resumes from
echoavc's own state. One local Ray instance per module (2 CPUs, every socket on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoavc.errors import EchoAVCError
from echoavc.runner import run_batch
from echoavc.runner_ray import MAX_TASK_RETRIES

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
OUTPUTS = ("frames.csv", "exams.csv", "failures.csv", "results.json")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance for this module (its GCS address). Ray is a test dependency (``echoavc[test]``):
    missing, a failure. Ray may already be imported (Ultralytics' training imports it), so what it reads on
    import is set on the module too."""
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        pytest.fail("ray not installed: it is a test dependency (pip install -e '.[test]')")
    env = {
        # a local-only Ray: without this it binds the machine's outward address (127.0.0.1 is "resolved" to it)
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # loopback only, so no token (docs/scaling.md: a real cluster uses one); none written to ~/.ray either
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        # workers import echoavc and this module's task functions
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    temp = tempfile.mkdtemp(prefix="echoavc-ray-")  # short: Ray's socket paths live under it
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # what the first variable does on import
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, logging_level="ERROR", log_to_driver=False)
        try:
            address = ray.get_runtime_context().gcs_address
            assert address.startswith("127.0.0.1:"), address
            yield address
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


# ---------------------------------------------------------------- the runner on Ray (no models)


def square_or_die(x: int, marks: str) -> tuple[str, int]:
    """Runs on a Ray worker. Each try leaves a mark; 7 kills its worker once, 13 on every try, 5 raises."""
    n = len(list(Path(marks).glob(f"{x}-*")))
    (Path(marks) / f"{x}-{n}").touch()
    if x == 13 or (x == 7 and n == 0):
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 5:
        raise ValueError("a bug\n  over two lines")
    return "ok", x * x


def test_dead_workers_are_replaced_and_a_file_that_kills_them_is_reported_once(ray_cluster, tmp_path):
    items = [1, 5, 7, 13, 2, 3]
    got: dict = {}
    run_batch(items, lambda x, r: got.setdefault(x, []).append(r), serial=None, workers=2, progress=False,
              parallel=lambda x: (square_or_die, x, str(tmp_path)), engine="ray",
              failed=lambda x, reason: ("failed", reason))
    assert sorted(got) == sorted(items) and all(len(v) == 1 for v in got.values())  # each finished once
    tries = {x: len(list(tmp_path.glob(f"{x}-*"))) for x in items}
    assert got[7] == [("ok", 49)] and tries[7] == 2  # its worker was restarted and the file tried again
    (status, reason), = got[13]
    assert status == "failed" and "Ray worker died" in reason and "\n" not in reason
    assert tries[13] == MAX_TASK_RETRIES + 1  # not retried forever
    assert got[5] == [("failed", "unexpected error: ValueError: a bug over two lines")] and tries[5] == 1
    assert all(got[x] == [("ok", x * x)] for x in (1, 2, 3))


def test_a_worker_out_of_restarts_is_replaced(ray_cluster, tmp_path, monkeypatch):
    import echoavc.runner_ray as rr

    monkeypatch.setattr(rr, "MAX_RESTARTS", 0)  # the first death is final: the pool must make a new worker
    got: dict = {}
    run_batch([7, 1, 2, 3], lambda x, r: got.setdefault(x, r), serial=None, workers=2, progress=False,
              parallel=lambda x: (square_or_die, x, str(tmp_path)), engine="ray",
              failed=lambda x, reason: ("failed", reason))
    assert got[7][0] == "failed" and "Ray worker died" in got[7][1]
    assert [got[x] for x in (1, 2, 3)] == [("ok", 1), ("ok", 4), ("ok", 9)]


def test_a_worker_that_cannot_start_is_one_clear_error(ray_cluster, tmp_path):
    from echoavc.dicom.deid import PseudonymKey
    from echoavc.runner_ray import key_marker, worker_secret

    def run(initargs):
        run_batch([1], lambda *a: None, serial=None, workers=1, progress=False, engine="ray",
                  parallel=lambda x: (square_or_die, x, str(tmp_path)), failed=lambda x, r: r,
                  initializer=worker_secret, initargs=initargs)

    with pytest.raises(EchoAVCError, match="key file not found on this node") as e:
        run((str(tmp_path / "missing.key"), "E-X"))
    assert "missing.key" in str(e.value) and "\n" not in str(e.value)
    other = PseudonymKey(tmp_path / "other.key")
    with pytest.raises(EchoAVCError, match="not the driver's key"):
        run((str(other.path), key_marker(b"\x01" * 32)))
    run((str(other.path), key_marker(other.secret)))  # the right key starts
    assert not list(tmp_path.glob("9-*"))


def test_without_ray_the_cli_says_how_to_install_it(monkeypatch, tmp_path):
    from echoavc.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    r = CliRunner().invoke(app, ["ingest", str(tmp_path), "--out", str(tmp_path / "o"), "--key",
                                 str(tmp_path / "k"), "--engine", "ray"])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == ["error: the Ray engine needs Ray, which is not installed: "
                                             "pip install 'echoavc[ray]'"]
    assert not (tmp_path / "k").exists()  # refused before any work


# ---------------------------------------------------------------- ingest and predict on Ray


def test_ingest_on_ray_writes_what_the_local_engine_writes(ray_cluster, synthetic_study, tmp_path, key_path):
    from echoavc.ingest import ingest

    inputs = copy_patients(synthetic_study.cohort.out_dir / "dicom", tmp_path / "in")
    good = next(inputs.rglob("*.dcm")).read_bytes()
    (inputs / "corrupt.dcm").write_bytes(good[: len(good) // 3])
    local = ingest([inputs], tmp_path / "local", key_path, progress=False)
    on_ray = ingest([inputs], tmp_path / "ray", key_path, workers=2, progress=False, engine="ray")
    assert (on_ray.done, on_ray.failed, on_ray.frames) == (local.done, local.failed, local.frames) == \
        (local.done, 1, local.frames)
    assert _tree(tmp_path / "ray") == _tree(tmp_path / "local")


def copy_patients(dicom: Path, dest: Path, n: int = 4) -> Path:
    """The first ``n`` patients' folders of a synthetic cohort (3-4 clips each): enough files for two workers."""
    for patient in sorted(p for p in dicom.iterdir() if p.is_dir())[:n]:
        shutil.copytree(patient, dest / patient.name)
    return dest


def _tree(root: Path) -> dict:
    """Every file under ``root`` (state records included) by path: bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def screened_locally(screening_bundle, tmp_path_factory):
    """Four patients' DICOM files, a corrupt one and a text file, screened by the local engine with a key."""
    from types import SimpleNamespace

    from echoavc.predict import predict

    root = tmp_path_factory.mktemp("ray_predict")
    inputs = copy_patients(screening_bundle.cohort_dir / "dicom", root / "inputs")
    good = sorted(inputs.rglob("*.dcm"))
    (inputs / "corrupt.dcm").write_bytes(good[0].read_bytes()[: good[0].stat().st_size // 3])
    (inputs / "notes.txt").write_text("not an image\n")
    key = root / "keys" / "echoavc.key"
    rep = predict([inputs], screening_bundle.bundle, root / "local", settings=screening_bundle.settings, key=key,
                  progress=False)
    assert len(rep.failures) == 2 and rep.exams
    s = screening_bundle.settings
    cli = ["predict", str(inputs), "--model", str(screening_bundle.bundle), "--key", str(key), "--no-progress",
           "--valve-conf", str(s.valve_conf), "--decide-conf", str(s.decide_conf), "--frames", s.frames,
           "--engine", "ray",
           "--workers", "2"]
    return SimpleNamespace(root=root, inputs=inputs, key=key, local=root / "local", n_good=len(good), cli=cli)


def busy_workers() -> list[int]:
    """Pids of this module's Ray workers in the middle of a file: titled ``ray::BatchWorker.run`` by Ray, and
    children of the raylet this process started (never another Ray's on the same machine)."""
    def parent(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    pids = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            pid = int(p.parent.name)
            if p.read_bytes().startswith(b"ray::BatchWorker.run") and parent(parent(pid)) == os.getpid():
                pids.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return pids


def records(out: Path) -> dict[str, int]:
    """The state records of a results folder: name -> modification time (ns)."""
    return {p.name: p.stat().st_mtime_ns for p in (out / ".state").glob("*.json")}


def same_outputs(out: Path, local: Path) -> None:
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    assert _tree(out / "overlays") == _tree(local / "overlays")


def test_predict_on_ray_writes_the_local_outputs_though_a_worker_is_killed_mid_file(ray_cluster, screened_locally,
                                                                                     tmp_path):
    from echoavc.cli import app

    out, killed = tmp_path / "ray", []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = len(records(out)) if (out / ".state").is_dir() else 0
            pids = busy_workers() if done >= 2 else []
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(done)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    r = CliRunner().invoke(app, [*screened_locally.cli, "--out", str(out)])
    killer.join(timeout=1)
    assert killed and killed[0] < screened_locally.n_good, "no worker was killed in the middle of the run"
    assert r.exit_code == 1, r.output  # the two bad inputs, reported as the local engine reports them
    assert "failed: " in r.output and "corrupt.dcm" in r.output and "notes.txt" in r.output
    same_outputs(out, screened_locally.local)


def test_a_rerun_after_a_killed_driver_skips_the_files_it_finished(ray_cluster, screened_locally, tmp_path):
    from echoavc.cli import app

    out = tmp_path / "resumed"
    driver = subprocess.Popen([sys.executable, "-m", "echoavc.cli", *screened_locally.cli, "--out", str(out),
                               "--address", ray_cluster], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while driver.poll() is None and time.monotonic() < deadline:
            if (out / ".state").is_dir() and len(records(out)) >= 2:
                driver.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        driver.kill()
        driver.wait()
    assert driver.returncode == -signal.SIGKILL
    finished = records(out)
    assert 2 <= len(finished) < screened_locally.n_good, len(finished)  # it really stopped part-way
    r = CliRunner().invoke(app, [*screened_locally.cli, "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert f"{len(finished)} inputs already done" in r.output
    assert {k: v for k, v in records(out).items() if k in finished} == finished  # not screened again
    assert len(records(out)) == screened_locally.n_good + 1  # + the heat maps' record
    same_outputs(out, screened_locally.local)


def test_a_pacs_source_is_refused_on_ray_before_any_connection(screening_bundle, tmp_path):
    from echoavc.cli import app

    r = CliRunner().invoke(app, ["predict", "orthanc://127.0.0.1:9", "--model", str(screening_bundle.bundle),
                                 "--out", str(tmp_path / "o"), "--study", "1.2.3", "--engine", "ray"])
    assert r.exit_code == 2, r.output
    assert "a PACS source is screened on this machine: --engine ray takes files, folders and zips" in r.output
