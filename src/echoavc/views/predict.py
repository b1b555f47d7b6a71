"""The view of input files (``echoavc views predict``) and of a dataset table's clips (``echoavc views evaluate``).

Files go through what screening does: the header first (:mod:`echoavc.views.headers`: M-mode and spectral
Doppler are not 2D views), then the shared preprocessing to standard frames, then the view net on up to
``frames_per_clip`` of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text, csv_text
from echoavc.views.classes import VIEW_CLASSES
from echoavc.views.headers import header_kind
from echoavc.views.model import ViewModel

__all__ = ["load_view_model", "views_of_files", "evaluate_table", "VIEW_COLUMNS"]

VIEW_COLUMNS = ["source", "view", "view_probability", "view_source", "reason", "frames",
                *[f"p_{c}" for c in VIEW_CLASSES]]


def load_view_model(path: str | Path, backend: str = "torch", threads: int = 0) -> ViewModel:
    """A view model folder (``echoavc views train``) or a bundle holding one."""
    path = Path(path)
    if (path / "views.json").is_file():
        return ViewModel.load(path, backend, threads)
    if (path / "bundle.json").is_file():
        from echoavc.bundle import load_bundle

        model = load_bundle(path).view_model(backend, threads)
        if model is None:
            raise EchoAVCError("this bundle holds no view model (echoavc train --view-model, or --views)", path)
        return model
    raise EchoAVCError("neither a view model folder (views.json) nor a bundle (bundle.json)", path)


def views_of_files(inputs: Sequence[str | Path], model: str | Path, out: str | Path, ingest_settings=None,
                   backend: str = "torch", progress: bool = True) -> list[dict]:
    """The view of each input file (DICOM or exported image) -> ``out/views.csv`` and ``failures.csv``."""
    from echoavc.errors import NoConeError
    from echoavc.files import progress_bar
    from echoavc.runner import failure_reason, find_sources
    from echoavc.screening.clips import read_input
    from echoavc.settings import IngestSettings

    vm = load_view_model(model, backend)
    ingest_settings = ingest_settings or IngestSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources, problems = find_sources(inputs)
    rows, failures = [], [{"source": n, "reason": r} for n, r in problems]
    with progress_bar("views", len(sources), enabled=progress) as advance:
        for src in sources:
            try:
                prepare, _, _, ds = read_input(src.read(), src.name, ingest_settings, with_header=True)
                hk = header_kind(ds)
                if not hk.screened:
                    rows.append({"source": src.name, "view": "other", "view_probability": 1.0,
                                 "view_source": "header", "reason": hk.kind, "frames": 0})
                else:
                    try:
                        prep = prepare()
                    except NoConeError as exc:
                        rows.append({"source": src.name, "view": "", "view_source": "", "reason": str(exc),
                                     "frames": 0})
                        advance()
                        continue
                    images = [prep.standard(f) for _, f in prep.frames()]
                    cv = vm.clip(images)
                    rows.append({"source": src.name, "view": cv.view, "view_probability": round(cv.probability, 4),
                                 "view_source": "model", "frames": cv.frames,
                                 "reason": "" if cv.view == "psax_av" else f"view {cv.view}",
                                 **{f"p_{c}": round(p, 4) for c, p in zip(VIEW_CLASSES, cv.probabilities)}})
            except Exception as exc:  # one bad file is one failure row, the batch goes on
                failures.append({"source": src.name, "reason": failure_reason(exc)})
            advance()
    atomic_write_text(out / "views.csv", csv_text(VIEW_COLUMNS, rows))
    atomic_write_text(out / "failures.csv", csv_text(["source", "reason"], failures))
    return rows


def evaluate_table(model: str | Path, data: str | Path, out: str | Path, split: str | Path | None = None,
                   part: str = "all", backend: str = "torch", n_boot: int = 2000) -> dict:
    """Clip view accuracy of ``model`` on dataset ``data`` (every patient with ``part`` = all, else that part of
    ``split``): the report (:func:`echoavc.views.evaluate.view_report`) and its files under ``out``."""
    from echoavc.dataset.split import Split
    from echoavc.dataset.table import DatasetTable
    from echoavc.views.data import view_frames
    from echoavc.views.evaluate import clip_predictions, view_report, write_view_report

    vm = load_view_model(model, backend)
    table = DatasetTable.load(data)
    patients = None
    if part != "all":
        sp = Split.load(split or Path(data) / "split.json")
        patients = sp.parts().get(part)
        if not patients:
            raise EchoAVCError(f"the split has no {part!r} patients", sp.path)
    frames = view_frames(table, vm.input_size, patients)
    if not len(frames):
        raise EchoAVCError("no frame with a known view (give views with `echoavc dataset build --views`)", data)
    z = vm.logits(frames.images.astype(np.float32)[:, None] / 255.0).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    clips = clip_predictions(probs, frames)
    rep = view_report(clips, n_boot=n_boot, label=f"{part} patients of {data}")
    rep["files"] = write_view_report(rep, clips, out)
    return rep
