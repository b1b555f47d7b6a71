"""Grad-CAM overlays for a part of a dataset: what ``echoavc classifier explain`` writes."""

from __future__ import annotations

from pathlib import Path

from echoavc.errors import EchoAVCError
from echoavc.files import atomic_write_text

#: The list of overlays written beside them.
INDEX_FILE = "index.csv"


def crop_name(key: str, label: int) -> str:
    """A file name for a crop: its source's hash prefix, frame index and label."""
    parts = key.split(":")
    return f"{parts[0][:12]}_{parts[-1]}_{'calc' if label else 'norm'}"


def explain_part(classifier, table, split, part: str, n: int, out_dir: str | Path) -> list[dict]:
    """Grad-CAM overlays of the first ``n`` labelled crops of ``part`` (torch ``Classifier``), and index.csv
    (name, probability, call, logit, overlay) beside them. Returns the index rows."""
    import pandas as pd

    from echoavc.classifier.data import CropSource, load_samples
    from echoavc.classifier.gradcam import explain

    samples = [s for s in load_samples(table, split) if s.part == part][:n]
    if not samples:
        raise EchoAVCError(f"no crops in part {part!r}")
    crops = CropSource(table, classifier.crop, classifier.noise_reduction).batch(samples)
    rows = explain(classifier, crops, out_dir, [crop_name(s.key, s.label) for s in samples])
    atomic_write_text(Path(out_dir) / INDEX_FILE, pd.DataFrame(rows).to_csv(index=False))
    return rows
