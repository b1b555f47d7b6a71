"""The cone that ingest finds on synthetic files matches the sector the generator drew.

The generator's noise floor keeps the whole sector faintly grey (as on real scanners), so
the cone detector sees the field's true outline instead of falling back to a hull of the
bright tissue (which could cut off the valve).
"""

from __future__ import annotations

import numpy as np

from echoavc.synth import realism as R


def test_ingest_cone_matches_true_sector(cohort, tmp_path):
    from echoavc.ingest import ingest

    ingest([cohort.out_dir / "dicom"], tmp_path / "out", tmp_path / "key" / "k", workers=1, progress=False)
    rows = R.cone_agreement(cohort.out_dir, tmp_path / "out" / "manifest.csv")
    iou = np.array([r["iou"] for r in rows])
    zoomed = np.array([r["zoomed"] for r in rows])
    assert len(rows) >= 20 and (~zoomed).sum() >= 15
    # every full sector at IoU >= 0.95 (strict, all files). Zoomed clips are a sector cut by a
    # box, which the detector models as either a sector or a rectangle (IoU 0.84-0.94 seen):
    # only a looser bound for them
    assert iou[~zoomed].min() >= 0.95, sorted(zip(iou[~zoomed], [r["file"] for r in rows if not r["zoomed"]]))[:3]
    assert iou.min() >= 0.80, sorted(iou)[:3]
    assert (iou >= 0.95).mean() >= 0.85, sorted(iou)[:5]
    assert all(r["source"] != "fallback" for r in rows), [r for r in rows if r["source"] == "fallback"]
    # the true valve box always lies inside the detected cone's bounding box
    assert all(r["valve_inside"] for r in rows), [r for r in rows if not r["valve_inside"]]
