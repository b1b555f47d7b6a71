"""Table 1 of Elvas et al. 2024: the detector with seven offline augmentation sets, under patient-grouped k-fold
cross-validation, beside the paper's numbers.

For each experiment (1 original, 2 zoom, 3 translation, 4 rotation, 5 gamma, 6 all four, 7 translation +
rotation) and each fold f of the shared split file: the training patients of fold f (the other folds) are
materialised with that augmentation (training part only), the detector is trained with Ultralytics' own online
augmentation OFF (so the offline sets are the only difference between experiments), the best epoch is picked
on fold f's validation patients, and the model is scored on the test part (patients no fold ever trains or
selects on; ``eval_part="val"`` scores the held-out fold instead). Each run gives a row with patient-bootstrap
intervals; experiments with two or more folds also get a "mean over folds" row (t interval over folds).
``folds <= 1`` runs once on the split's main train/val/test parts.

Writes ``table1.md``, ``table1.csv`` and ``table1_details.json`` into ``out`` after every run (a time cap or a
crash keeps what was done); each run keeps its folder ``runs/e<N>-<name>/<fold>`` with ``detector.json`` and
``evaluation.json``, and a finished run is reused when the command is run again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from echoavc.files import atomic_write_text
from echoavc.dataset.augment import augmentation_name, parse_augmentation
from echoavc.dataset.split import Split
from echoavc.dataset.table import DatasetTable
from echoavc.errors import EchoAVCError
from echoavc.evaluate.intervals import Interval
from echoavc.evaluate.tables import REPORTED_LABEL, ResultRow, paper_entry, to_markdown, with_fold_means, write_csv
from echoavc.settings import DetectorSettings, detector_preset

#: Table 1's experiments: number -> materialise augmentation name.
EXPERIMENTS: dict[int, str] = {1: "original", 2: "zoom", 3: "translation", 4: "rotation", 5: "gamma", 6: "all",
                               7: "translation+rotation"}
METRICS = ("precision", "recall", "f1", "map50", "map50_95", "mean_iou", "patient_hit_rate", "false_detection_rate")


@dataclass
class Table1Result:
    rows: list[ResultRow]
    markdown: str
    files: dict[str, Path]
    details: dict


def experiment_label(n: int) -> str:
    return f"{n}. {EXPERIMENTS[n]}"


def fold_list(split: Split, folds: int) -> list[int | None]:
    """Folds to run: ``[None]`` (main split) for ``folds <= 1``, else ``0..folds-1`` (the split must have them)."""
    if folds <= 1:
        return [None]
    if split.k < folds:
        raise EchoAVCError(f"--folds {folds} needs a split with at least {folds} folds; this one has k={split.k} "
                           f"(make one with echoavc dataset split --k {folds})", split.path)
    return list(range(folds))


def _interval(d: dict) -> Interval:
    nan = float("nan")
    return Interval(*(nan if d.get(k) is None else d[k] for k in ("estimate", "lo", "hi")), d.get("method", ""),
                    int(d.get("n") or 0), d.get("n_boot_valid"), d.get("note", ""))


def run_table1(data: DatasetTable | str | Path, split: Split | str | Path, out: str | Path, folds: int = 5,
               preset: str = "cpu", experiments: Sequence[int] = tuple(EXPERIMENTS), time_cap_minutes: float | None = None,
               weights: str | Path | None = None, eval_part: str = "test", n_boot: int = 1000, seed: int = 0,
               settings: DetectorSettings | None = None, log: Callable[[str], None] = print) -> Table1Result:
    """Run the Table 1 experiments (module docstring) and write the tables; returns them."""
    from echoavc.detector.evaluate import evaluate, write_report
    from echoavc.detector.predict import Detector
    from echoavc.detector.train import train_from_table

    table = data if isinstance(data, DatasetTable) else DatasetTable.load(data)
    sp = split if isinstance(split, Split) else Split.load(split)
    bad = [e for e in experiments if e not in EXPERIMENTS]
    if bad or not experiments:
        raise EchoAVCError(f"experiments are numbered 1-7 (got {list(experiments)})")
    if eval_part not in ("test", "val"):
        raise EchoAVCError(f"eval part must be test or val, not {eval_part!r}")
    fl = fold_list(sp, folds)
    base = settings or detector_preset(preset)
    base = replace(base, online_augment=False, seed=seed)  # the offline sets are the only difference
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [(e, f) for e in experiments for f in fl]
    t_start = time.perf_counter()
    rows: list[ResultRow] = []
    details: dict = {"format": "echoavc-table1/1", "preset": preset, "settings": None, "folds": fl,
                     "eval_part": eval_part, "split_fingerprint": sp.fingerprint, "table_fingerprint": table.fingerprint,
                     "time_cap_minutes": time_cap_minutes, "runs": [], "model_name": None}
    for i, (e, f) in enumerate(runs):
        name = EXPERIMENTS[e]
        fold_name = "main split" if f is None else f"fold {f}"
        run_dir = out / "runs" / f"e{e}-{augmentation_name(parse_augmentation(name)).replace('+', '_')}" / \
            ("main" if f is None else f"fold{f}")
        s = base
        if time_cap_minutes is not None:
            left = time_cap_minutes - (time.perf_counter() - t_start) / 60
            if left <= 0.2:
                log(f"time cap reached: skipping experiment {e} {fold_name} and after")
                details["stopped_by_time_cap"] = True
                break
            s = replace(base, time_hours=left / (len(runs) - i) / 60)
        details["settings"] = {k: v for k, v in s.__dict__.items() if k != "augment"}
        eval_file = run_dir / "eval" / "evaluation.json"
        if eval_file.is_file():
            rep_d = json.loads(eval_file.read_text())
            metrics = {k: _interval(rep_d["metrics"][k]) for k in METRICS}
            run_info = json.loads((run_dir / "detector.json").read_text())
            log(f"experiment {e} ({name}), {fold_name}: reused {eval_file}")
        else:
            log(f"experiment {e} ({name}), {fold_name}: training ({s.model}, imgsz {s.imgsz}, "
                f"{'time cap %.1f min' % (s.time_hours * 60) if s.time_hours else '%d epochs' % s.epochs})")
            result = train_from_table(table, sp, run_dir, s, fold=f, augmentation=name, weights=weights)
            det = Detector(result.best, settings=s)
            rep = evaluate(det, table, sp, eval_part, f, s.conf, n_boot, seed)
            write_report(rep, run_dir / "eval")
            metrics = {k: rep["metrics"][k] for k in METRICS}
            run_info = result.info
        details["model_name"] = run_info.get("model_name")
        details["runs"].append({"experiment": e, "augmentation": name, "fold": f, "run_dir": str(run_dir),
                                "model_name": run_info.get("model_name"),
                                "train_images": (run_info.get("images") or {}).get("train"),
                                "epochs_run": run_info.get("epochs_run"), "train_seconds": run_info.get("train_seconds"),
                                "metrics": {k: v.to_dict() for k, v in metrics.items()}})
        rows.append(ResultRow(experiment_label(e), fold_name, metrics))
        files = _write(out, rows, details, eval_part)
        log("  -> " + ", ".join(f"{k} {metrics[k].format(2)}" for k in ("precision", "recall", "f1", "map50")))
    if not rows:
        raise EchoAVCError("no experiment finished within the time cap")
    details["total_seconds"] = round(time.perf_counter() - t_start, 1)
    files = _write(out, rows, details, eval_part)
    all_rows = with_fold_means(rows)
    return Table1Result(all_rows, files["markdown_text"], {k: v for k, v in files.items() if k != "markdown_text"},
                        details)


def _reported(rows: Sequence[ResultRow]) -> dict:
    out = {}
    for r in rows:
        n = int(r.experiment.split(".")[0])
        out[r.experiment] = paper_entry("table1", n)
    return out


def _write(out: Path, rows: list[ResultRow], details: dict, eval_part: str) -> dict:
    all_rows = with_fold_means(rows)
    reported = _reported(rows)
    model = details.get("model_name") or "?"
    sizes = {}
    for r in details["runs"]:
        sizes.setdefault(experiment_label(r["experiment"]), []).append(r.get("train_images"))
    head = [
        "# Table 1: valve detection with offline augmentation",
        "",
        f"Model: **{model}** (Ultralytics' anchor-free YOLOv5u built from its yaml, not the paper's YOLOv5s), "
        f"preset `{details['preset']}`, Ultralytics online augmentation off. Split by patient "
        f"({'folds ' + ', '.join(str(f) for f in details['folds']) if details['folds'] != [None] else 'main split'}); "
        f"scored on the {'test patients (never trained or selected on)' if eval_part == 'test' else 'held-out fold'}. "
        "A prediction is the top box with score >= 0.25; correct when IoU >= 0.5. Intervals: 95%, patient "
        "bootstrap (proportions: the wider of that and Clopper-Pearson); \"mean over folds\": t interval over folds.",
        "",
        f"The last column is the paper's Table 1 ({REPORTED_LABEL}): 61 images, augmented before an 80/10/10 "
        "split by image, no intervals. It is context, not a target.",
        "",
        "Training images per run: " + "; ".join(f"{k}: {', '.join(str(x) for x in v)}" for k, v in sizes.items()),
        "",
        "",
    ]
    md = "\n".join(head) + to_markdown(all_rows, list(METRICS), reported=reported) + "\n"
    if details.get("stopped_by_time_cap"):
        md += "\nStopped by the time cap: experiments missing above did not run.\n"
    paths = {"markdown": out / "table1.md", "csv": out / "table1.csv", "details": out / "table1_details.json"}
    atomic_write_text(paths["markdown"], md)
    write_csv(all_rows, paths["csv"], reported)
    atomic_write_text(paths["details"], json.dumps(details, indent=1, default=str) + "\n")
    return {**paths, "markdown_text": md}
