"""The batch runner: inputs in, one record per input, resumable, in parallel, never stopped by a bad file.

Shared by ``echoavc ingest`` and ``echoavc predict`` (and the stage records of ``echoavc train``)::

    sources, problems = find_sources(inputs)          # files, folders (recursive), zip members
    state = open_state(out)                           # one JSON record per finished input, written atomically
    run_batch(todo, finish, serial=..., parallel=...) # in this process or a process pool, with a progress bar
    run_batch(..., engine="ray", address=..., failed=...) # on the actors of a Ray cluster (runner_ray.py)

The caller supplies what is particular to it: how one input becomes a record (``serial`` / ``parallel``),
what ``finish`` keeps of it (its state record, counts), which records count as done on a re-run (its
resume key), and the tables it writes at the end (atomically, :mod:`echoavc.files`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text, progress_bar, remove_stale_temporaries

__all__ = ["Source", "find_sources", "is_ignored", "failure_reason", "StateStore", "open_state", "run_batch",
           "worker_context", "PREDICT_PRELOAD", "STATE_DIR", "ENGINES", "check_engine"]

STATE_DIR = ".state"
#: where a batch runs: this machine (this process or a process pool), or a Ray cluster
ENGINES = ("local", "ray")
T = TypeVar("T")


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Source:
    """One input file: on disk, or a member of a zip archive."""

    path: Path
    member: str | None = None
    #: a zip member's size, read with the archive's listing (asking the archive again per member re-reads it)
    member_size: int | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def size(self) -> int:
        """Bytes of the input (0 when it cannot be read now: reading it will say why)."""
        if self.member_size is not None:
            return self.member_size
        try:
            if self.member is None:
                return self.path.stat().st_size
            with zipfile.ZipFile(self.path) as zf:
                return zf.getinfo(self.member).file_size
        except (OSError, zipfile.BadZipFile, KeyError):
            return 0

    def read(self) -> bytes:
        try:
            if self.member is None:
                return self.path.read_bytes()
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise EchoAVCError(f"cannot read ({type(exc).__name__}: {exc.args[-1] if exc.args else ''})", self.name) from exc


def find_sources(inputs: Iterable[str | Path]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Expand files, folders (recursively) and zip archives; return (sources, problems)."""
    sources: list[Source] = []
    problems: list[tuple[str, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not is_ignored(f))
        elif p.is_file():
            files = [p]
        else:
            problems.append((str(p), "no such file or folder"))
            continue
        for f in files:
            if zipfile.is_zipfile(f) and f.suffix.lower() == ".zip":
                try:
                    with zipfile.ZipFile(f) as zf:
                        members = sorted(
                            (m.filename, m.file_size) for m in zf.infolist()
                            if not m.is_dir() and not is_ignored(Path(m.filename))
                        )
                except zipfile.BadZipFile as exc:
                    problems.append((str(f), f"corrupt zip archive ({exc})"))
                    continue
                sources.extend(Source(f, m, size) for m, size in members)
            else:
                sources.append(Source(f))
    return sources, problems


def is_ignored(path: Path) -> bool:
    """Hidden files (.DS_Store, ._x) and DICOMDIR indexes carry no images."""
    return any(part.startswith(".") for part in path.parts[-1:]) or path.name.upper() == "DICOMDIR"


def failure_reason(exc: BaseException, out_of_memory: str = "out of memory") -> str:
    """The one-line reason a batch records for an input that failed (a decoder bug must not stop the batch)."""
    if isinstance(exc, EchoAVCError):
        return exc.reason
    if isinstance(exc, MemoryError):
        return out_of_memory
    return f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


# ---------------------------------------------------------------- resume state


class StateStore:
    """A folder of JSON records, ``<key>.json``, each written atomically: a record exists only for work
    finished. A damaged record reads as none (the work is done again)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> dict | None:
        try:
            rec = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def save(self, key: str, record: dict, indent: int | None = None) -> None:
        atomic_write_text(self.path(key), json.dumps(record, sort_keys=True, indent=indent, default=str))

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json"))


def open_state(out_dir: str | Path, clean: bool = True) -> StateStore:
    """The state folder of a batch writing into ``out_dir`` (created). ``clean``: first delete the temporary
    files a killed run left in ``out_dir``."""
    out_dir = Path(out_dir)
    if clean:
        remove_stale_temporaries(out_dir)
    (out_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    return StateStore(out_dir / STATE_DIR)


# ---------------------------------------------------------------- running


def check_engine(engine: str) -> None:
    """A one-line error for an unknown engine, or for Ray when it is not installed (before any work starts)."""
    if engine not in ENGINES:
        raise EchoAVCError(f"engine must be {' or '.join(ENGINES)}, not {engine!r}")
    if engine == "ray":
        from echoavc.runner_ray import import_ray

        import_ray()


#: what a screening worker (echoavc.predict) imports before its first file: the module, and SciPy's signal
#: module, which the first clip with an ECG trace loads (about 0.6 s) and each worker would load again. Here,
#: not in predict, so that the command line can start the fork server before it imports predict itself.
PREDICT_PRELOAD = ("echoavc.predict", "scipy.signal")


def worker_context(preload: Sequence[str] = (), start: bool = False):
    """The multiprocessing context of the batch's worker processes: a fork server that has imported
    ``preload`` once, where the platform has one, else spawn.

    A spawned worker imports everything itself (about half a second each for predict, on top of the first
    call's lazy imports), which a small batch's two workers pay twice and before any work. The fork server
    imports ``preload`` once and forks each worker from that state. It is a fresh process that has run no
    thread pool (torch and onnxruntime make theirs later, in each worker), so its forks are safe where a fork of
    the calling process is not. ``start``: launch it now, so it imports while the caller goes on with its own
    start. The server is one per process and its preload is fixed by whoever starts it first; without
    ``preload`` the preload already set is left as it is."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if preload:
        ctx.set_forkserver_preload(list(preload))
    if start:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    return ctx


def run_batch(todo: Sequence[T], finish: Callable[[T, Any], None], *, serial: Callable[[T], Any],
              parallel: Callable[[T], tuple] | None = None, workers: int = 1, label: str = "", progress: bool = True,
              mp_context=None, initializer: Callable | None = None, initargs: tuple = (), engine: str = "local",
              address: str | None = None, failed: Callable[[T, str], Any] | None = None,
              cpus_per_worker: float = 1, cost: Callable[[T], float] | None = None) -> None:
    """Run every item of ``todo`` and hand each result to ``finish(item, result)``, in this process.

    With ``workers`` > 1 and more than one item, ``parallel(item)`` gives ``(function, *args)`` (picklable) run
    in a process pool of ``workers`` (``mp_context``, ``initializer``/``initargs`` as ProcessPoolExecutor's),
    results arriving as they complete; otherwise ``serial(item)`` runs here, in order. One progress step
    per item. The functions must return failures as results, not raise.

    ``engine="ray"``: ``parallel`` runs on ``workers`` Ray actors (0: one per ``cpus_per_worker`` CPUs of the
    cluster at ``address``), each made once with ``initializer(*initargs)``; ``failed(item, reason)`` is the
    result of an item its worker died on (:mod:`echoavc.runner_ray`). Arguments travel through Ray's control
    store: no secrets in them.

    ``cost(item)``: a guess of an item's work (a file's size). The pool then gets the costliest items first, so
    that a long clip does not start last while the other workers sit idle (the longest-first rule); results and
    ``finish`` calls come as items complete in either case.
    """
    check_engine(engine)
    if engine == "ray":
        if parallel is None or failed is None:
            raise ValueError("the Ray engine needs parallel and failed")
        from echoavc.runner_ray import run_on_ray

        run_on_ray(todo, finish, parallel, failed=failed, workers=workers, initializer=initializer,
                   initargs=initargs, address=address, cpus_per_worker=cpus_per_worker, label=label,
                   progress=progress)
        return
    with progress_bar(label, len(todo), progress) as advance:
        if workers <= 1 or len(todo) <= 1 or parallel is None:
            for item in todo:
                finish(item, serial(item))
                advance()
            return
        order = sorted(todo, key=cost, reverse=True) if cost is not None else list(todo)
        pool = ProcessPoolExecutor(workers, mp_context=mp_context, initializer=initializer, initargs=initargs)
        try:
            futures = {pool.submit(*parallel(item)): item for item in order}
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
                advance()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        # every result is in: the workers exit while the caller writes its tables (waiting cost 0.16 s)
        pool.shutdown(wait=False)

