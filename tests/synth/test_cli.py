"""``echoavc synth`` and the gallery."""

from __future__ import annotations

import cv2
from typer.testing import CliRunner

from echoavc.cli import app


def test_synth_command_writes_cohort_and_gallery(tmp_path):
    out = tmp_path / "c"
    res = CliRunner().invoke(app, ["synth", "--patients", "2", "--out", str(out), "--seed", "3",
                                   "--frames-per-exam", "3", "--gallery", "--no-progress", "--workers", "1"])
    assert res.exit_code == 0, res.output
    for name in ("frames.csv", "labels.csv", "maxqda_valves.csv", "cohort.json", "gallery.png"):
        assert (out / name).is_file()
    img = cv2.imread(str(out / "gallery.png"))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 1000


def test_synth_command_rejects_bad_prevalence(tmp_path):
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--prevalence", "2"])
    assert res.exit_code != 0
