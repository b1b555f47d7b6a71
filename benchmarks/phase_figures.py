"""The pictures of docs/phase.md, from a cohort made by benchmarks/bench_phase.py (or any --phase-variety cohort).

    PYTHONPATH=src python benchmarks/phase_figures.py /tmp/echoavc-bench-phase/cohort-900812-40 docs/figures

Writes ``phase-ecg-trace.png`` (a clip's on-screen ECG strip, the R peaks found on it and each frame's marker)
and ``phase-over-clip.png`` (that clip's valve state per frame from each source beside the truth, and the valve
centre's grey level the image source reads).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_phase import read_clip  # noqa: E402

from echoavc.phase.ecg_trace import ecg_area, read_ecg_trace  # noqa: E402
from echoavc.phase.header import header_timing  # noqa: E402
from echoavc.phase.image import read_valve_image  # noqa: E402
from echoavc.phase.timing import end_diastole_frames, positions_from_fractions, valve_states  # noqa: E402
from echoavc.synth.anatomy import valve_phase_column  # noqa: E402

LEVEL = {"open": 0, "unknown": 0.5, "closed": 1}


def pick_clip(df: pd.DataFrame) -> pd.DataFrame:
    """The longest clip that has an ECG with its marker on screen and a header ECG waveform."""
    ok = df[(df["ecg_on_screen"] == "marker") & (df["phase_header"].isin(["waveform", "r_wave_times"]))]
    ok = ok if len(ok) else df[df["ecg_on_screen"] == "marker"]
    longest = ok["file"].value_counts().index[0]
    return df[df["file"] == longest].sort_values("frame_index")


def main(cohort: Path, out: Path) -> None:
    df = pd.read_csv(cohort / "frames.csv")
    g = pick_clip(df)
    ds, kept, frames, masked, field = read_clip(cohort / g["file"].iloc[0])
    area = ecg_area(ds, frames[0].shape[:2], field).focus(frames[0])
    strips = [area.take(f) for f in frames]
    ecg = read_ecg_trace(strips, area)
    head = header_timing(ds, len(kept))
    boxes = [[r.valve_x1, r.valve_y1, r.valve_x2, r.valve_y2] for r in g.itertuples()]
    image = read_valve_image(masked, boxes)
    out.mkdir(parents=True, exist_ok=True)

    x0, y0, x1, y1 = area.box
    fig, ax = plt.subplots(figsize=(9, 2.6))
    ax.imshow(frames[len(frames) // 2][y0:y1, x0:x1], cmap="gray", extent=(x0, x1, y1, y0))
    peaks = [p + x0 for p in ecg.r_peaks_x]  # the reading's x is the strip's; the picture's the screen's
    for px in peaks:
        ax.axvline(px, color="red", lw=1, ls="--")
    ax.plot(peaks, [y0 + 3] * len(peaks), "rv", ms=8, label="R peaks found")
    mk = [m + x0 for m in ecg.marker_x if m is not None]
    ax.plot(mk, [y1 - 4] * len(mk), "c|", ms=12, mew=2, label="current-frame marker, every frame")
    ax.set_title(f"{g['layout'].iloc[0]} screen, ECG strip of frame {len(frames) // 2}: {ecg.how}", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_xlabel("screen x (pixels)")
    fig.tight_layout()
    fig.savefig(out / "phase-ecg-trace.png", dpi=110)
    plt.close(fig)

    n = len(kept)
    t = np.arange(n) * float(g["frame_time_ms"].iloc[0])
    rows = [("truth", list(valve_phase_column(g)))]
    if head.positions is not None:
        rows.append((f"header ({head.how})", valve_states(head.positions)))
    if ecg.positions is not None:
        rows.append(("ECG trace on screen", valve_states(ecg.positions)))
    if image.states is not None:
        rows.append(("image (valve centre)", image.states))
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for k, (name, states) in enumerate(rows):
        axes[0].step(t, [LEVEL[s] + 0.04 * k for s in states], where="mid", label=name, lw=1.6)
    ed = end_diastole_frames(positions_from_fractions(g["cycle_fraction"].to_numpy()))
    axes[0].set_yticks([0, 0.5, 1], ["open", "unknown", "closed"])
    axes[0].legend(fontsize=7, loc="center right")
    axes[0].set_title(f"valve phase over a clip of {n} frames ({g['layout'].iloc[0]}, header: "
                      f"{g['phase_header'].iloc[0]}; dotted: true end-diastole frames)", fontsize=9)
    axes[1].plot(t, image.signal, "k.-")
    axes[1].set_ylabel("centre grey", fontsize=8)
    axes[1].set_xlabel("time from the first frame (ms)")
    for i in ed:
        axes[0].axvline(t[i], color="grey", lw=0.8, ls=":")  # true end-diastole frames
    fig.tight_layout()
    fig.savefig(out / "phase-over-clip.png", dpi=110)
    plt.close(fig)
    print(f"{out / 'phase-ecg-trace.png'}, {out / 'phase-over-clip.png'} from {g['file'].iloc[0]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
