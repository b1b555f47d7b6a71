"""The Ray engine of the batch runner: the same batch, its files spread over the workers of a Ray cluster.

``run_batch(..., engine="ray")`` (:mod:`echoavc.runner`) comes here. Each worker is a Ray actor made once per
batch with the caller's initializer, so the models are loaded once per worker, as in the local process pool.
Items go to idle actors as tasks (``parallel(item)`` gives ``(function, *args)``); results come back to this
process, the driver, which alone calls ``finish``: state records and tables are written in one place, so the
outputs are those of the local engine. Files and output folders are reached by path: every node must see
them at the same path (a shared filesystem), and each actor works in the driver's working folder.

Failures. A worker killed mid-file (a crash, the kernel's OOM killer, a lost node) is restarted by Ray
(``MAX_RESTARTS``) and its file tried again (``MAX_TASK_RETRIES``); a file that kills its worker every time
becomes one failure after ``MAX_TASK_RETRIES + 1`` tries, and an actor out of restarts is replaced by a new
one (at most ``workers`` times in all). Resume is the caller's own state (:class:`echoavc.runner.StateStore`),
never Ray's: a killed driver takes its actors with it, and a re-run skips the files whose records were written.

Secrets. Ray keeps actor creation arguments (to restart actors) and task arguments in its control store and
may show them in its logs and tools, so neither carries the pseudonym key: callers pass the key file's path
and :func:`worker_secret` reads it on the worker, checked against :func:`key_marker` (not the key).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TypeVar

from echoavc.errors import EchoAVCError
from echoavc.files import progress_bar

__all__ = ["INSTALL_HINT", "MAX_RESTARTS", "MAX_TASK_RETRIES", "import_ray", "connected", "run_on_ray",
           "BatchWorker", "worker_secret", "key_marker"]

INSTALL_HINT = "pip install 'echoavc[ray]'"
#: restarts of one worker (actor) after its process died; then it is replaced
MAX_RESTARTS = 3
#: further tries of a file whose worker died while on it; then the file is reported as failed
MAX_TASK_RETRIES = 2
#: seconds a worker may take to be placed and to start (load the models) before it is given up
START_TIMEOUT = 600
T = TypeVar("T")


def import_ray():
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EchoAVCError(f"the Ray engine needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected: to ``address`` (``auto``: the cluster started on this machine with ``ray start``;
    ``HOST:PORT``: its head), or with None to ``RAY_ADDRESS`` if set, else to a new local instance (shut down
    afterwards). A process already connected (``ray.init`` called before) stays as it is."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict = {"address": address, "logging_level": logging.WARNING}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False  # a private instance for this batch: nothing to watch
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EchoAVCError(f"cannot connect to the Ray cluster ({_one_line(exc)})", address or "local") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class BatchWorker:
    """One Ray worker: works in the driver's folder, runs the caller's initializer once (models, key) and then
    the tasks it is given. An initializer that fails leaves the worker alive to say why (:meth:`hello`)."""

    def __init__(self, cwd: str, initializer: Callable | None, initargs: tuple):
        self.problem: tuple[str, str | None] | None = None
        try:
            try:
                os.chdir(cwd)
            except OSError:
                raise EchoAVCError("the driver's working folder is missing on this node (a shared filesystem "
                                   "at the same path is needed)", cwd) from None
            if initializer is not None:
                initializer(*initargs)
        except EchoAVCError as exc:
            self.problem = (exc.reason, exc.path)
        except Exception as exc:  # a worker that cannot start must say why once, not fail every file
            self.problem = (_one_line(exc), None)

    def hello(self) -> dict:
        from echoavc import __version__

        return {"pid": os.getpid(), "host": socket.gethostname(), "echoavc": __version__, "problem": self.problem}

    def run(self, function: Callable, *args) -> Any:
        if self.problem is not None:
            raise EchoAVCError(*self.problem)
        return function(*args)


def run_on_ray(todo: Sequence[T], finish: Callable[[T, Any], None], parallel: Callable[[T], tuple], *,
               failed: Callable[[T, str], Any], workers: int = 0, initializer: Callable | None = None,
               initargs: tuple = (), address: str | None = None, cpus_per_worker: float = 1, label: str = "",
               progress: bool = True) -> None:
    """Run every item on Ray actors and hand each result to ``finish(item, result)`` here (see the module
    docstring). ``workers``: actors (0: as many as the cluster's CPUs allow at ``cpus_per_worker`` each);
    ``failed(item, reason)``: the result recorded for an item that its worker died on, or that raised."""
    if not todo:
        return
    with connected(address) as ray:
        from ray.exceptions import RayActorError, RayError, RayTaskError

        # more actors than the cluster has CPUs for would wait for a place forever
        capacity = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        workers = min(workers if workers > 0 else capacity, capacity, len(todo))
        actor = ray.remote(num_cpus=cpus_per_worker, max_restarts=MAX_RESTARTS,
                           max_task_retries=MAX_TASK_RETRIES)(BatchWorker)
        args = (os.getcwd(), initializer, initargs)
        pool = [actor.remote(*args) for _ in range(workers)]
        spares = len(pool)
        try:
            # every worker starts (models loaded, key read) before any file goes out: one clear error, not a
            # failure per file; those not placed in time (CPUs held by other jobs) are given up
            started = _started(ray, pool)
            if not started:
                raise EchoAVCError(f"no Ray worker started within {START_TIMEOUT} s (are the cluster's CPUs "
                                   "taken by other jobs?)", address or "local")

            def replace_if_dead(a):
                nonlocal spares
                try:
                    ray.get(a.hello.remote(), timeout=START_TIMEOUT)  # restarted by Ray: it carries on
                    return a
                except (RayActorError, ray.exceptions.GetTimeoutError):
                    ray.kill(a, no_restart=True)  # gone for good: its CPU goes to the replacement
                    if spares <= 0:
                        return None
                    spares -= 1
                    new = actor.remote(*args)
                    pool.append(new)
                    return new if _started(ray, [new]) else None

            queue, running, idle = deque(todo), {}, started
            with progress_bar(label, len(todo), progress) as advance:
                while queue or running:
                    while idle and queue:
                        a, item = idle.pop(), queue.popleft()
                        running[a.run.remote(*parallel(item))] = (item, a)
                    if not running:
                        raise EchoAVCError(f"every Ray worker died, replacements included; {len(queue)} inputs "
                                           "not done (run again: the finished ones are kept)")
                    (ref,), _ = ray.wait(list(running), num_returns=1)
                    item, a = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RayActorError as exc:
                        result = failed(item, f"its Ray worker died while on it, {MAX_TASK_RETRIES + 1} tries "
                                              f"at most ({type(exc).__name__}); not tried again")
                        a = replace_if_dead(a)
                    except RayTaskError as exc:  # the functions return failures; this is a bug or a broken worker
                        from echoavc.runner import failure_reason

                        result = failed(item, failure_reason(exc.cause if exc.cause is not None else exc))
                    except RayError as exc:  # Ray's memory monitor, a lost object
                        result = failed(item, f"Ray: {type(exc).__name__}: {_one_line(exc)}")
                    finish(item, result)
                    advance()
                    if a is not None:
                        idle.append(a)
        finally:
            for a in pool:
                ray.kill(a, no_restart=True)


def _started(ray, actors: list) -> list:
    """The actors that started within START_TIMEOUT (the others killed); an error if one cannot work."""
    hellos = {a.hello.remote(): a for a in actors}
    ready, late = ray.wait(list(hellos), num_returns=len(hellos), timeout=START_TIMEOUT)
    for ref in late:
        ray.kill(hellos[ref], no_restart=True)
    started = []
    for ref in ready:
        try:
            info = ray.get(ref)
        except ray.exceptions.RayActorError:  # died while starting: a replacement may do better
            continue
        _check_started(info)
        started.append(hellos[ref])
    return started


def _check_started(info: dict) -> None:
    from echoavc import __version__

    if info["problem"] is not None:
        reason, path = info["problem"]
        raise EchoAVCError(f"Ray worker on {info['host']}: {reason}", path)
    if info["echoavc"] != __version__:
        raise EchoAVCError(f"Ray worker on {info['host']} runs echoavc {info['echoavc']}, this driver "
                           f"{__version__}: install the same version on every node")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


# ---------------------------------------------------------------- the key on workers


def key_marker(secret: bytes) -> str:
    """A mark of the key that does not reveal it (a keyed pseudonym of a constant): what workers check theirs
    against."""
    from echoavc.dicom.deid import pseudonym

    return pseudonym(secret, "check", "echoavc")


def worker_secret(key_file: str | None, marker: str | None) -> bytes | None:
    """The pseudonym key's secret, read on a worker from the key file the driver made (never created here:
    workers creating keys would race and disagree), and checked to be the driver's key."""
    if key_file is None:
        return None
    from echoavc.dicom.deid import read_key

    path = Path(key_file)
    if not path.is_file():
        raise EchoAVCError("key file not found on this node: keep it on a path every node shares", path)
    secret = read_key(path)
    if key_marker(secret) != marker:
        raise EchoAVCError("this node's key file is not the driver's key", path)
    return secret
