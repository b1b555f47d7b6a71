"""The Ray engine (``--engine ray``, echoavc.runner_ray): the same outputs as the local engine, workers that die
are replaced and their files tried again (a bounded number of times), and a killed driver resumes from
echoavc's own state. One local Ray instance per module (2 CPUs, every socket on 127.0.0.1, token auth)."""

from __future__ import annotations

import os
import secrets
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
    """A local Ray instance for this module. Ray is a test dependency (``echoavc[test]``): missing, a failure."""
    env = {
        # a local-only Ray: without this it binds the machine's outward address (127.0.0.1 is "resolved" to it)
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # token authentication, as docs/scaling.md advises, with the token in the environment (no ~/.ray file)
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        # workers import echoavc and this module's task functions
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    temp = tempfile.mkdtemp(prefix="echoavc-ray-")  # short: Ray's socket paths live under it
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        try:
            import ray  # after the environment is set: Ray reads some of it once, on import
        except ImportError:
            pytest.fail("ray not installed: it is a test dependency (pip install -e '.[test]')")
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

    inputs = tmp_path / "in"
    shutil.copytree(synthetic_study.cohort.out_dir / "dicom", inputs)
    good = next(inputs.rglob("*.dcm")).read_bytes()
    (inputs / "corrupt.dcm").write_bytes(good[: len(good) // 3])
    local = ingest([inputs], tmp_path / "local", key_path, progress=False)
    on_ray = ingest([inputs], tmp_path / "ray", key_path, workers=2, progress=False, engine="ray")
    assert (on_ray.done, on_ray.failed, on_ray.frames) == (local.done, local.failed, local.frames) == \
        (local.done, 1, local.frames)
    assert _tree(tmp_path / "ray") == _tree(tmp_path / "local")


def _tree(root: Path) -> dict:
    """Every file under ``root`` (state records included) by path: bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
