"""Ingest speed on the real 120-frame SonoSite JPEG clip (pydicom-data), measured in one run.

    python benchmarks/bench_ingest.py [--repeat 3]

Prints frames per second of ``ingest`` with 1 and 2 workers, the ratio of its time to pydicom's bare
decode of the same frames (goal: at most 2x), and frames per second on an uncompressed copy.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.pixels import iter_pixels

from echoavc.ingest import ingest
from echoavc.synth.realism import reference_file


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    clip = reference_file("color3d_jpeg_baseline.dcm")  # never a download
    if clip is None:
        raise SystemExit("error: color3d_jpeg_baseline.dcm (pydicom's test data) is not installed; "
                         "this benchmark never downloads it")
    n = int(pydicom.dcmread(clip, stop_before_pixels=True).NumberOfFrames)
    work = Path(tempfile.mkdtemp(prefix="echoavc-bench-"))
    key = work / "keys" / "bench.key"

    def run(src: Path, workers: int) -> None:
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        ingest([src], out, key, workers=workers, progress=False)

    bare = timed(lambda: sum(1 for _ in iter_pixels(clip)), args.repeat)
    one = timed(lambda: run(clip, 1), args.repeat)
    two = timed(lambda: run(clip, 2), args.repeat)

    ds = pydicom.dcmread(clip)
    ds.decompress()
    raw = work / "uncompressed.dcm"
    ds.save_as(raw)
    bare_raw = timed(lambda: sum(1 for _ in iter_pixels(raw)), args.repeat)
    raw_one = timed(lambda: run(raw, 1), args.repeat)
    raw_two = timed(lambda: run(raw, 2), args.repeat)
    shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; median of {args.repeat}")
    print(f"JPEG baseline clip, {n} frames 640x480 YBR_FULL_422")
    print(f"  pydicom bare decode      {n / bare:7.1f} frames/s")
    print(f"  ingest, 1 worker         {n / one:7.1f} frames/s   {one / bare:4.2f}x the bare decode time")
    print(f"  ingest, 2 workers        {n / two:7.1f} frames/s   {two / bare:4.2f}x the bare decode time")
    print(f"uncompressed copy (explicit VR little endian, RGB), {n} frames")
    print(f"  pydicom bare decode      {n / bare_raw:7.1f} frames/s")
    print(f"  ingest, 1 worker         {n / raw_one:7.1f} frames/s")
    print(f"  ingest, 2 workers        {n / raw_two:7.1f} frames/s")


if __name__ == "__main__":
    main()
