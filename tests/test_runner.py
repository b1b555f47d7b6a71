"""The batch runner and the atomic writes every stage shares (echoavc.runner, echoavc.files)."""

import zipfile

import pytest

from echoavc.files import atomic_folder, atomic_write_with
from echoavc.runner import StateStore, failure_reason, find_sources, open_state, run_batch
from echoavc.errors import EchoAVCError


def _square(x: int) -> int:
    return x * x


def _timed_sleep(seconds: float) -> tuple[float, float]:
    import time

    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    time.sleep(seconds)
    return start, time.monotonic()


def test_sources_expand_folders_and_zips_and_skip_hidden_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.dcm").write_bytes(b"1")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "a" / "DICOMDIR").write_bytes(b"x")
    with zipfile.ZipFile(tmp_path / "a" / "b.zip", "w") as zf:
        zf.writestr("x/two.dcm", b"2")
        zf.writestr("x/._two.dcm", b"junk")
    sources, problems = find_sources([tmp_path / "a", tmp_path / "missing"])
    assert [s.name for s in sources] == [f"{tmp_path / 'a' / 'b.zip'}!x/two.dcm", str(tmp_path / "a" / "one.dcm")]
    assert [s.read() for s in sources] == [b"2", b"1"]
    assert problems == [(str(tmp_path / "missing"), "no such file or folder")]


def test_state_records_resume_and_a_damaged_one_reads_as_none(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".x.abc.tmp").write_bytes(b"half")  # left by a killed run
    store = open_state(tmp_path / "out")
    assert not (tmp_path / "out" / ".x.abc.tmp").exists()
    store.save("k1", {"status": "ok", "n": 1})
    assert store.load("k1") == {"status": "ok", "n": 1} and store.load("k2") is None
    store.path("k2").write_text("{not json")
    assert StateStore(store.folder).load("k2") is None and store.keys() == ["k1", "k2"]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_item_is_finished_once_serially_or_in_a_pool(workers):
    got = {}
    run_batch([1, 2, 3], lambda item, result: got.setdefault(item, result), serial=_square,
              parallel=lambda item: (_square, item), workers=workers, progress=False)
    assert got == {1: 1, 2: 4, 3: 9}


def test_the_pool_gets_the_costliest_item_first():
    # four short items, then a long one: in the given order the long one starts when two short ones are done and
    # finishes alone; longest first, it starts with the first short one
    todo = [0.4, 0.4, 0.4, 0.4, 1.2]
    done = {}
    run_batch(todo, lambda i, r: done.setdefault(len(done), (i, r)), serial=None, workers=2, progress=False,
              parallel=lambda s: (_timed_sleep, s), cost=lambda s: s)
    long_start = next(r[0] for i, r in done.values() if i == 1.2)
    assert len(done) == 5 and long_start < min(r[1] for i, r in done.values() if i == 0.4), done


def test_a_sources_cost_is_its_size(tmp_path):
    (tmp_path / "one.dcm").write_bytes(b"12345")
    with zipfile.ZipFile(tmp_path / "b.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("two.dcm", b"0" * 1000)
    sources, _ = find_sources([tmp_path])
    assert sorted(s.size() for s in sources) == [5, 1000]  # the member's own size, not its compressed one
    (tmp_path / "one.dcm").unlink()
    (tmp_path / "b.zip").unlink()
    # a file's size is asked when wanted; a member's came with the archive's listing (not one re-read per member)
    assert [s.size() for s in sources] == [1000, 0]


def test_predict_workers_start_with_their_imports_done(tmp_path):
    # in a fresh interpreter (the fork server is one per process, its preload fixed by whoever starts it): the
    # workers of a screening batch find predict and SciPy's signal module imported before their first file,
    # done once by the fork server instead of once per worker; a spawned worker would find neither
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from echoavc.runner import PREDICT_PRELOAD, worker_context\n"
        "def loaded():\n"
        "    import sys\n"
        "    return sorted(m for m in ('echoavc.predict', 'scipy.signal') if m in sys.modules)\n"
        "if __name__ == '__main__':\n"
        "    ctx = worker_context(PREDICT_PRELOAD, start=True)\n"
        "    assert 'echoavc.predict' not in sys.modules and 'scipy.signal' not in sys.modules\n"
        "    with ProcessPoolExecutor(2, mp_context=ctx) as pool:\n"
        "        print(ctx.get_start_method(), pool.submit(loaded).result())\n")
    (tmp_path / "probe.py").write_text(script)
    run = subprocess.run([sys.executable, str(tmp_path / "probe.py")], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["forkserver", "['echoavc.predict',", "'scipy.signal']"], run.stdout


def test_failure_reasons_are_one_line():
    assert failure_reason(EchoAVCError("bad header", "f.dcm")) == "bad header"
    assert failure_reason(MemoryError()) == "out of memory"
    assert failure_reason(ValueError("a\n  b")) == "unexpected error: ValueError: a b"


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "bundle"
    with atomic_folder(out) as tmp:
        (tmp / "a").write_text("1")
        assert not out.exists()
    assert (out / "a").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as tmp:
            (tmp / "b").write_text("2")
            raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["a"] and [p.name for p in tmp_path.iterdir()] == ["bundle"]
    with atomic_folder(out) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["c"] and [p.name for p in tmp_path.iterdir()] == ["bundle"]
