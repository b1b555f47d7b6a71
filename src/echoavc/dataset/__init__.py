"""Training data: the validated table, patient splits, augmentation, and materialised folders.

From Python::

    from echoavc.dataset import build_dataset, make_split, materialise
    table = build_dataset("ingested/manifest.csv", "boxes.csv", "maxqda", "labels.csv", key="echoavc.key",
                          out="dataset")
    split = make_split(table.frame, table_fingerprint=table.fingerprint); split.save("dataset/split.json")
    materialise(table, split, "runs/data/rotation-f0", fold=0, augmentation="rotation")
"""

from echoavc.lazy import lazy_exports

# Lazy: every CLI start imports ``echoavc.dataset.cli``, which must not pay for pandas and the table code.
_EXPORTS = {"DatasetTable": "table", "build_dataset": "table", "build_table": "table", "export_boxes": "table",
            "Split": "split", "make_split": "split", "paper_image_split": "split", "materialise": "folders",
            "valve_crop": "folders"}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
