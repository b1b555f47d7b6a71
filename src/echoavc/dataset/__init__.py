"""Training data: the validated table, patient splits, augmentation, and materialised folders.

From Python::

    from echoavc.dataset import build_dataset, make_split, materialise
    table = build_dataset("ingested/manifest.csv", "boxes.csv", "maxqda", "labels.csv", key="echoavc.key",
                          out="dataset")
    split = make_split(table.frame, table_fingerprint=table.fingerprint); split.save("dataset/split.json")
    materialise(table, split, "runs/data/rotation-f0", fold=0, augmentation="rotation")
"""

from echoavc.dataset.folders import materialise, valve_crop
from echoavc.dataset.split import Split, make_split, paper_image_split
from echoavc.dataset.table import DatasetTable, build_dataset, build_table, export_boxes

__all__ = ["DatasetTable", "build_dataset", "build_table", "export_boxes", "Split", "make_split",
           "paper_image_split", "materialise", "valve_crop"]
