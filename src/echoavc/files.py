"""Small shared I/O: the atomic writes (one file, one folder), CSV text, and the progress bar every long loop
shows."""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def atomic_write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Make ``path`` by ``write(temporary path)`` beside it, then a rename: never half-written. The one
    atomic-write mechanism, for writers that want a file name (savefig, safetensors, ONNX export)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename: never half-written."""
    atomic_write_with(path, lambda tmp: tmp.write_bytes(payload))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Build a folder in a temporary sibling (yielded) and rename it to ``out`` at the end, replacing an older
    one; an exception removes the temporary folder, so an interrupted build never leaves a half folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp: the folder keeps the umask's permissions (mkdtemp's are owner-only)
    tmp = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporary files a killed run left behind (``.<name>.<random>.tmp``)."""
    for stale in Path(folder).rglob(".*.tmp"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


@contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr; yields ``advance()``. Nothing is shown when disabled or empty."""
    if not enabled or total <= 0:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(file=sys.stderr)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def png_flags(compression: int = 1) -> list[int]:
    """OpenCV PNG flags for echo frames: SUB filter + RLE take a third of zlib's default time and give smaller
    files (docs/benchmarks.md); still lossless."""
    import cv2

    return [cv2.IMWRITE_PNG_COMPRESSION, int(compression), cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
